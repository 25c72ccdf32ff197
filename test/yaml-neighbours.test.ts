// The small pure helpers behind NoCloud's YAML documents and verify_mac's neighbour lookups.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { toYaml, type YamlValue } from '../src/metadata/yaml.js';
import { parseArpTable } from '../src/net/neighbours.js';

const YAML_CASES: { name: string; value: YamlValue; text: string }[] = [
  { name: 'a flat mapping with plain keys', value: { a: 'x', b: 1, c: true, d: null }, text: 'a: "x"\nb: 1\nc: true\nd: null\n' },
  { name: 'keys YAML 1.1 would read as booleans are quoted', value: { yes: 'no', on: 'off' }, text: '"yes": "no"\n"on": "off"\n' },
  { name: 'keys with punctuation are quoted', value: { 'a: b': 'c # d' }, text: '"a: b": "c # d"\n' },
  { name: 'a host name that looks like a boolean stays a string', value: { 'local-hostname': 'yes' }, text: 'local-hostname: "yes"\n' },
  { name: 'newlines and quotes are escaped, never new lines', value: { k: 'a\nb: "c"' }, text: 'k: "a\\nb: \\"c\\""\n' },
  { name: 'nested mappings indent by two', value: { a: { b: { c: 'd' } } }, text: 'a:\n  b:\n    c: "d"\n' },
  { name: 'sequences of scalars', value: { l: ['x', 2] }, text: 'l:\n  - "x"\n  - 2\n' },
  { name: 'a mapping inside a sequence starts after the dash', value: [{ a: 1, b: 2 }], text: '- a: 1\n  b: 2\n' },
  { name: 'empty collections are written inline', value: { a: [], b: {} }, text: 'a: []\nb: {}\n' },
  { name: 'an empty top-level mapping', value: {}, text: '{}\n' },
];

for (const c of YAML_CASES) {
  test(`toYaml: ${c.name}`, () => {
    assert.equal(toYaml(c.value), c.text);
  });
}

test('toYaml refuses numbers YAML cannot hold', () => {
  assert.throws(() => toYaml({ n: Number.NaN }), /non-finite/);
});

test('what toYaml writes reads back as the same value with PyYAML (cloud-init\'s parser)', (t) => {
  const probe = spawnSync('python3', ['-c', 'import yaml'], { encoding: 'utf8' });
  if (probe.status !== 0) return t.skip('python3 with PyYAML is not installed (scripts/install-test-deps.sh installs it)');
  const value = { yes: 'no', 'a: b': ['x', { y: 'on', n: 3 }], s: 'line1\nline2 # not a comment', u: 'ünï', e: [], m: {} };
  const r = spawnSync('python3', ['-c', 'import sys, yaml, json; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], { input: toYaml(value), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout) as unknown, value);
});

const ARP = `IP address       HW type     Flags       HW address            Mask     Device
10.0.0.2         0x1         0x2         52:54:00:AA:BB:CC     *        br0
10.0.0.3         0x1         0x0         00:00:00:00:00:00     *        br0
10.0.0.4         0x1         0x6         52:54:00:00:00:04     *        br0
`;

test('parseArpTable keeps completed entries, lower-cased, and drops incomplete ones', () => {
  const t = parseArpTable(ARP);
  assert.deepEqual([...t], [['10.0.0.2', '52:54:00:aa:bb:cc'], ['10.0.0.4', '52:54:00:00:00:04']]);
});

test('parseArpTable of a header alone, an empty text or garbage is empty', () => {
  for (const text of ['', 'IP address       HW type     Flags       HW address            Mask     Device\n', 'x\ny z\n']) {
    assert.equal(parseArpTable(text).size, 0, JSON.stringify(text));
  }
});
