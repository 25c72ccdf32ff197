// One DNS name, one address: how dnsmasq's entries are made unique when a database holds two
// instances with the same host name.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uniqueHostNames } from '../src/instances/hostNames.js';
import type { HostRecord } from '../src/store/store.js';

function rec(name: string, hostName: string, uuid: string, firstSeen: number, ipv4: string): HostRecord {
  return { name, hostName, uuid, firstSeen, ipv4, ipv6: null, host: '', mac: `52:54:00:00:00:${ipv4.slice(-2).padStart(2, '0')}` };
}

test('without collisions the entries are the records, in their order', () => {
  const records = [rec('a', 'a', '00000000-0000-4000-8000-000000000001', 5, '10.0.0.1'), rec('b_', 'b', '00000000-0000-4000-8000-000000000002', 1, '10.0.0.2')];
  const { entries, collisions } = uniqueHostNames(records);
  assert.deepEqual(entries, records.map(({ hostName, mac, ipv4, ipv6 }) => ({ hostName, mac, ipv4, ipv6 })));
  assert.deepEqual(collisions, []);
});

test('the first seen keeps a shared name; the others are listed under it plus the start of their uuid', () => {
  const { entries, collisions } = uniqueHostNames([
    rec('VICTIM', 'VICTIM', 'aaaaaaaa-0000-4000-8000-000000000001', 20, '10.0.0.1'),
    rec('victim', 'victim', 'bbbbbbbb-0000-4000-8000-000000000002', 30, '10.0.0.2'),
    rec('victim_', 'victim', 'cccccccc-0000-4000-8000-000000000003', 10, '10.0.0.3'),
  ]);
  assert.deepEqual(entries.map((e) => [e.hostName, e.ipv4]), [['VICTIM-aaaaaaaa', '10.0.0.1'], ['victim-bbbbbbbb', '10.0.0.2'], ['victim', '10.0.0.3']]);
  assert.deepEqual(collisions, [{
    hostName: 'victim',
    kept: { name: 'victim_', uuid: 'cccccccc-0000-4000-8000-000000000003' },
    renamed: [
      { name: 'VICTIM', uuid: 'aaaaaaaa-0000-4000-8000-000000000001', listedAs: 'VICTIM-aaaaaaaa' },
      { name: 'victim', uuid: 'bbbbbbbb-0000-4000-8000-000000000002', listedAs: 'victim-bbbbbbbb' },
    ],
  }]);
});

test('a replacement name never takes a name another instance has, and stays one DNS label', () => {
  const long = 'x'.repeat(63);
  const { entries } = uniqueHostNames([
    rec('web', 'web', 'aaaaaaaa-0000-4000-8000-000000000001', 1, '10.0.0.1'),
    rec('WEB', 'WEB', 'dddddddd-0000-4000-8000-000000000002', 2, '10.0.0.2'),
    rec('web-dddddddd', 'web-dddddddd', 'eeeeeeee-0000-4000-8000-000000000003', 3, '10.0.0.3'),
    rec(long, long, 'ffffffff-0000-4000-8000-000000000004', 4, '10.0.0.4'),
    rec(`${long}_`, long, '99999999-0000-4000-8000-000000000005', 5, '10.0.0.5'),
  ]);
  const names = entries.map((e) => e.hostName);
  assert.deepEqual(names, ['web', 'WEB-dddddddd-2', 'web-dddddddd', long, `${'x'.repeat(54)}-99999999`]);
  assert.equal(new Set(names.map((n) => n.toLowerCase())).size, names.length);
  for (const n of names) assert.match(n, /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/);
});
