// The host name an instance is known by (safeHostName) and the uuid and MAC forms (ids.ts),
// without a server.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { canonicalUuid, isMac, UUID } from '../src/ids.js';
import { safeHostName } from '../src/names.js';

const UID = 'becb25c7-b581-4ecd-b60e-a9942ad18879';

describe('safeHostName', () => {
  const cases: [string, string, string][] = [
    ['a valid host name stays as it is', 'web-1', 'web-1'],
    ['upper case is kept (DNS ignores case)', 'Web1', 'Web1'],
    ['a space becomes "-"', 'web server', 'web-server'],
    ['a comma, which would split a dhcp-hosts line, becomes "-"', 'a,b', 'a-b'],
    ['"#", "_", "." and other characters become "-"', 'db#1_x.y', 'db-1-x-y'],
    ['runs of replaced characters and "-" collapse to one', 'a  ,, b--c', 'a-b-c'],
    ['leading and trailing "-" are dropped', '--x--', 'x'],
    ['non-ASCII letters are replaced too', 'café', 'caf'],
    ['the result is cut to one DNS label (63 characters)', 'a'.repeat(70), 'a'.repeat(63)],
    ['a cut that ends in "-" drops it', `${'a'.repeat(62)}-b`, 'a'.repeat(62)],
    ['a name with nothing left becomes instance-<first 8 hex digits of the uuid>', '___', 'instance-becb25c7'],
    ['an empty name too', '', 'instance-becb25c7'],
  ];
  for (const [label, name, expected] of cases) {
    test(label, () => assert.equal(safeHostName(name, UID), expected));
  }
});

describe('uuid and MAC forms', () => {
  const uuids: [string, string | null][] = [
    [UID, UID],
    ['BECB25C7-B581-4ECD-B60E-A9942AD18879', UID],
    ['becb25c7b5814ecdb60ea9942ad18879', UID],
    ['  becb25c7-b5814ecd-b60e-a9942ad18879\n', UID],
    ['becb25c7-b581-4ecd-b60e-a9942ad1887', null],
    ['becb25c7-b581-4ecd-b60e-a9942ad188790', null],
    ['becb25c-7b581-4ecd-b60e-a9942ad18879', null],
    ['gecb25c7-b581-4ecd-b60e-a9942ad18879', null],
    ['', null],
  ];
  for (const [raw, expected] of uuids) {
    test(`canonicalUuid(${JSON.stringify(raw)}) is ${String(expected)}`, () => {
      assert.equal(canonicalUuid(raw), expected);
      if (expected !== null) assert.match(expected, UUID);
    });
  }

  const macs: [string, boolean][] = [
    ['52:54:00:3a:cf:41', true],
    ['52:54:00:3A:CF:41', false],
    ['52-54-00-3a-cf-41', false],
    ['52:54:00:3a:cf', false],
    ['52:54:00:3a:cf:41:00', false],
    ['5:54:00:3a:cf:41', false],
  ];
  for (const [mac, expected] of macs) {
    test(`${mac} is ${expected ? '' : 'not '}a stored MAC`, () => assert.equal(isMac(mac), expected));
  }
});
