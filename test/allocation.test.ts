// Choosing a new instance's address (instances/allocation.ts), without a server: which addresses
// are never handed out, how a free one is found, and what a full pool gives.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ipv4Allocator, pickIPv4, reservedAddresses, type PoolSettings } from '../src/instances/allocation.js';
import { formatIPv4, net4, parseIPv4 } from '../src/net/ip.js';

const ip = (s: string): number => parseIPv4(s) as number;
/** 10.0.0.0/29: host addresses .1 to .6, broadcast .7. */
const NET = net4(ip('10.0.0.0'), 29);
/** A "random" source that yields `values` in turn, then 0 forever. */
const sequence = (...values: number[]) => () => values.shift() ?? 0;
const never = (): boolean => false;

describe('reservedAddresses', () => {
  const cases: [string, (string | null)[], string[]][] = [
    ['the IPv4 addresses given', ['10.0.0.1', '169.254.169.254', '10.0.0.2'], ['10.0.0.1', '169.254.169.254', '10.0.0.2']],
    ['none for a missing address', ['10.0.0.1', null], ['10.0.0.1']],
    ['none for an IPv6 or malformed one', ['fd00:ec2::254', '10.0.0', '', '10.0.0.01'], []],
    ['each address once', ['10.0.0.1', '10.0.0.1'], ['10.0.0.1']],
  ];
  for (const [label, given, expected] of cases) {
    test(`reserves ${label}`, () => {
      assert.deepEqual([...reservedAddresses(given)].map(formatIPv4), expected);
    });
  }
});

describe('pickIPv4', () => {
  const cases: [string, () => number, Set<number>, (a: number) => boolean, string | null][] = [
    ['a random host address while the pool is sparse', sequence(0.5), new Set(), never, '10.0.0.4'],
    ['never the network address: the first draw is the first host', sequence(0), new Set(), never, '10.0.0.1'],
    ['never the broadcast address: the last draw is the last host', sequence(0.999), new Set(), never, '10.0.0.6'],
    ['another draw when one hits a reserved address', sequence(0, 0.2), new Set([ip('10.0.0.1')]), never, '10.0.0.2'],
    ['another draw when one hits a used address', sequence(0.5, 0.9), new Set(), (a) => a === ip('10.0.0.4'), '10.0.0.6'],
    [
      'after eight misses, a scan from a random start finds the one free address',
      () => 0, new Set([ip('10.0.0.1')]), (a) => a !== ip('10.0.0.5'), '10.0.0.5',
    ],
    ['null when every host address is used or reserved', Math.random, new Set([ip('10.0.0.1')]), (a) => a !== ip('10.0.0.1'), null],
  ];
  for (const [label, random, reserved, isUsed, expected] of cases) {
    test(label, () => {
      const n = pickIPv4(NET, reserved, isUsed, random);
      assert.equal(n === null ? null : formatIPv4(n), expected);
    });
  }

  test('null for networks without host addresses (/31, /32)', () => {
    assert.equal(pickIPv4(net4(ip('10.0.0.0'), 31), new Set(), never), null);
    assert.equal(pickIPv4(net4(ip('10.0.0.0'), 32), new Set(), never), null);
  });

  test('a full scan visits every host address once', () => {
    const asked: number[] = [];
    const none = pickIPv4(NET, new Set(), (a) => (asked.push(a), true), sequence(0, 0, 0, 0, 0, 0, 0, 0, 0.5));
    assert.equal(none, null);
    const scanned = asked.slice(8).map(formatIPv4);
    assert.deepEqual(scanned, ['10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });
});

describe('ipv4Allocator', () => {
  const settings: PoolSettings = {
    dnsmasq: { net: NET, gateway: '10.0.0.1', listenAddress: '10.0.0.2' },
    mdserver: { listenAddress: '10.0.0.3' },
  };

  test("never hands out the gateway or mdserver's and dnsmasq's listen addresses", () => {
    const allocate = ipv4Allocator(settings);
    const given = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const a = allocate((s) => given.has(s));
      assert.ok(a !== null);
      given.add(a);
    }
    assert.deepEqual([...given].sort(), ['10.0.0.4', '10.0.0.5', '10.0.0.6']);
    assert.equal(allocate((s) => given.has(s)), null, 'then the pool is full');
  });

  test('asks the store about addresses in their written form', () => {
    const asked: string[] = [];
    const got = ipv4Allocator(settings, sequence(0.5))((s) => (asked.push(s), false));
    assert.equal(got, '10.0.0.4');
    assert.deepEqual(asked, ['10.0.0.4']);
  });

  test('an IPv6 or absent listen address reserves nothing', () => {
    const v6: PoolSettings = { dnsmasq: { net: NET, gateway: '10.0.0.1', listenAddress: null }, mdserver: { listenAddress: 'fd00:ec2::254' } };
    assert.equal(ipv4Allocator(v6, sequence(0.2))(never), '10.0.0.2');
  });
});
