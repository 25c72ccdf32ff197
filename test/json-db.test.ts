// md_server's JSON database -> the store's records (convertJsonDb), without a server: both file
// layouts, the entries that are skipped and why, and the times.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMdsError } from '../src/errors.js';
import { convertJsonDb } from '../src/store/jsonDb.js';

const NOW = Date.UTC(2024, 0, 2, 3, 4, 5);

const LEGACY1 = {
  domain_name: 'legacy1', domain_uuid: 'BECB25C7-B581-4ECD-B60E-A9942AD18879', mds_mac: '52:54:00:3A:CF:41',
  mds_ipv4: '10.122.33.7', mds_ipv6: null, location: 'rack1',
  domain_metadata: { userdata_prefix: 'testing', ignored: 3 },
  first_seen: 1700000000.5, last_update: 1700000100,
};

describe("converting md_server's JSON database", () => {
  test('an entry becomes a record with lower-case ids, its address, string metadata and times in milliseconds', () => {
    const { rows, skipped } = convertJsonDb([LEGACY1], NOW);
    assert.deepEqual(skipped, []);
    assert.deepEqual(rows, [{
      name: 'legacy1', uuid: 'becb25c7-b581-4ecd-b60e-a9942ad18879', mac: '52:54:00:3a:cf:41', ipv4: '10.122.33.7',
      ipv6: null, location: 'rack1', metadata: { userdata_prefix: 'testing' }, arch: null, nwfilter: null,
      firstSeen: 1700000000500, lastUpdate: 1700000100000,
    }]);
  });

  test('both layouts are read: a bare list and {metadata, entries}', () => {
    assert.deepEqual(convertJsonDb({ metadata: { version: 1 }, entries: [LEGACY1] }, NOW), convertJsonDb([LEGACY1], NOW));
    assert.deepEqual(convertJsonDb({ entries: [] }, NOW), { rows: [], skipped: [] });
  });

  test('anything else is refused as DB_FORMAT', () => {
    for (const data of [null, 42, 'text', {}, { entries: {} }]) {
      assert.throws(() => convertJsonDb(data, NOW), (e) => isMdsError(e) && e.code === 'DB_FORMAT', JSON.stringify(data));
    }
  });

  const times: [string, unknown, unknown, number, number][] = [
    // label, first_seen, last_update, firstSeen, lastUpdate
    ['seconds (md_server writes time.time())', 1700000000, 1700000060, 1700000000000, 1700000060000],
    ['milliseconds', 1700000000123, 1700000060123, 1700000000123, 1700000060123],
    ['date strings', '2023-11-14T22:13:20Z', '2023-11-14T22:14:20.000Z', 1700000000000, 1700000060000],
    ['missing: first seen now, last update the first sighting', undefined, null, NOW, NOW],
    ['unreadable: the same', 'yesterday-ish', Number.NaN, NOW, NOW],
    ['last update missing: the first sighting', 1700000000, undefined, 1700000000000, 1700000000000],
  ];
  for (const [label, first, last, firstSeen, lastUpdate] of times) {
    test(`times given as ${label}`, () => {
      const { rows } = convertJsonDb([{ ...LEGACY1, first_seen: first, last_update: last }], NOW);
      assert.deepEqual([rows[0]?.firstSeen, rows[0]?.lastUpdate], [firstSeen, lastUpdate]);
    });
  }

  const skippedCases: [string, Record<string, unknown>, RegExp][] = [
    ['no name', { domain_name: undefined }, /^entry 1: missing name, uuid or a valid MAC$/],
    ['no uuid', { domain_uuid: '' }, /^other: missing name, uuid or a valid MAC$/],
    ['a MAC that is not one', { mds_mac: '52:54:00:3a:cf' }, /^other: missing/],
    ['the name of an earlier entry', { domain_name: 'legacy1' }, /^legacy1: duplicates an earlier entry/],
    ['the uuid of an earlier entry', { domain_uuid: LEGACY1.domain_uuid.toLowerCase() }, /^other: duplicates/],
    ['the MAC of an earlier entry', { mds_mac: '52:54:00:3a:cf:41' }, /^other: duplicates/],
    ['the address of an earlier entry', { mds_ipv4: '10.122.33.7' }, /^other: duplicates/],
  ];
  for (const [label, change, why] of skippedCases) {
    test(`an entry with ${label} is skipped, saying why, and the others are kept`, () => {
      const other = { domain_name: 'other', domain_uuid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mds_mac: '52:54:00:11:22:33', mds_ipv4: '10.122.33.8' };
      const { rows, skipped } = convertJsonDb([LEGACY1, { ...other, ...change }], NOW);
      assert.deepEqual(rows.map((r) => r.name), ['legacy1']);
      assert.equal(skipped.length, 1);
      assert.match(skipped[0] ?? '', why);
    });
  }

  test('an address that is not IPv4 is dropped, keeping the entry (it gets a new one when it next registers)', () => {
    const { rows } = convertJsonDb([{ ...LEGACY1, mds_ipv4: '10.122.33' }, { ...LEGACY1, domain_name: 'b', domain_uuid: '4f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mds_mac: '52:54:00:00:00:01', mds_ipv4: 7 }], NOW);
    assert.deepEqual(rows.map((r) => [r.name, r.ipv4]), [['legacy1', null], ['b', null]]);
  });

  test('missing optional fields get their defaults', () => {
    const { rows } = convertJsonDb([{ domain_name: 'bare', domain_uuid: '3f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mds_mac: '52:54:00:00:00:02' }], NOW);
    assert.deepEqual(rows[0], {
      name: 'bare', uuid: '3f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mac: '52:54:00:00:00:02', ipv4: null, ipv6: null, location: '', metadata: {}, arch: null, nwfilter: null,
      firstSeen: NOW, lastUpdate: NOW,
    });
  });
});
