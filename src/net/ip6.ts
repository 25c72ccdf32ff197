// Pure IPv6 helpers: parsing and printing, and the one rule that gives an instance its IPv6
// address: the host part of its IPv4 address in the last 32 bits of the IPv6 prefix. Deriving
// it keeps one allocator (IPv4's) and one conflict rule: two instances can only share an IPv6
// address if they share an IPv4 one, which the store never allows.

import net from 'node:net';
import { inNet, parseIPv4, formatIPv4, type Net4 } from './ip.js';

const ALL = (1n << 128n) - 1n;

/** An IPv6 address (any form `net.isIPv6` accepts, a zone index removed) as a 128-bit number. */
export function parseIPv6(s: string): bigint | null {
  const bare = s.replace(/%.*$/, '');
  if (!net.isIPv6(bare)) return null;
  let text = bare;
  // An embedded dotted IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = parseIPv4(dotted[1] as string);
    if (v4 === null) return null;
    text = `${text.slice(0, dotted.index)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head = '', tail] = text.split('::') as [string, string | undefined];
  const groups = (g: string): string[] => (g === '' ? [] : g.split(':'));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const fill = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill('0');
  const all = [...h, ...fill, ...t];
  if (all.length !== 8) return null;
  return all.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** The canonical text of an address (RFC 5952: lower case, the longest run of zero groups as ::). */
export function formatIPv6(n: bigint): string {
  return formatGroups(Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn)));
}

/** The canonical text of the eight 16-bit groups `g`. */
function formatGroups(g: readonly number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** The canonical form of an IPv6 address text, or null when it is not one. */
export function canonicalIPv6(s: string): string | null {
  const n = parseIPv6(s);
  return n === null ? null : formatIPv6(n);
}

export function prefixMask6(prefix: number): bigint {
  return prefix === 0 ? 0n : (ALL << BigInt(128 - prefix)) & ALL;
}

/** True when `addr` has no host bits set for `prefix`. */
export function isNetworkAddress6(addr: bigint, prefix: number): boolean {
  return (addr & ~prefixMask6(prefix) & ALL) === 0n;
}

export function inNet6(network: bigint, prefix: number, addr: bigint): boolean {
  return (addr & prefixMask6(prefix)) === network;
}

/** fe80::/10: an address valid on one link only, whose owner the neighbour table names. */
export function isLinkLocal6(s: string): boolean {
  const n = parseIPv6(s);
  return n !== null && n >> 118n === 0x3fan;
}

/**
 * The MAC an EUI-64 interface identifier was made from (ff:fe in its middle, the
 * universal/local bit flipped), or null when the address was formed otherwise (stable privacy,
 * random, manual).
 */
export function eui64Mac(s: string): string | null {
  const n = parseIPv6(s);
  if (n === null) return null;
  const iid = n & 0xffffffffffffffffn;
  if (((iid >> 24n) & 0xffffn) !== 0xfffen) return null;
  const bytes = [56n, 48n, 40n, 16n, 8n, 0n].map((s2) => Number((iid >> s2) & 0xffn));
  bytes[0] = (bytes[0] as number) ^ 0x02;
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** How instances get their IPv6 addresses: the IPv6 prefix, the IPv4 network, the host's own addresses. */
export interface Plan6 {
  readonly network: bigint;
  readonly prefix: number;
  readonly net4: Net4;
  /** The host's addresses in the prefix (gateway6, listen_address6), never an instance's. */
  readonly reserved: readonly bigint[];
}

/**
 * What every address of a plan shares, in numbers rather than BigInts: the dnsmasq files derive
 * an address for each of a hundred thousand instances at every rewrite. An IPv4 host part is
 * below 2^32, so it only changes the last two groups, and their text follows the canonical text
 * of the first six; which of the two are zero decides where the longest run of zeros is.
 */
interface PlanParts {
  /** The network's last 32 bits. */
  readonly low: number;
  /** The last 32 bits of the reserved addresses that share the first six groups. */
  readonly reservedLow: ReadonlySet<number>;
  /** By which of the last two groups are non-zero (2: the 7th, 1: the 8th), the text before theirs. */
  readonly head: readonly [string, string, string, string];
}

const planParts = new WeakMap<Plan6, PlanParts>();

function partsOf(plan: Plan6): PlanParts {
  let parts = planParts.get(plan);
  if (!parts) {
    const high = plan.network >> 32n;
    const first = Array.from({ length: 6 }, (_, i) => Number((plan.network >> BigInt(112 - 16 * i)) & 0xffffn));
    // Formatted with 1 for a non-zero group, whose text `1` (and the `:0` of a zero last group
    // after a non-zero one: a single zero group is never shortened) is then cut off again.
    const text = (g7: number, g8: number): string => formatGroups([...first, g7, g8]);
    parts = {
      low: Number(plan.network & 0xffffffffn),
      reservedLow: new Set(plan.reserved.filter((r) => r >> 32n === high).map((r) => Number(r & 0xffffffffn))),
      head: [text(0, 0), text(0, 1).slice(0, -1), text(1, 0).slice(0, -3), text(1, 1).slice(0, -3)],
    };
    planParts.set(plan, parts);
  }
  return parts;
}

/**
 * The IPv6 address of the instance whose IPv4 address is `ipv4`: the IPv4 host part in the last
 * 32 bits of the prefix. Null for an address outside the IPv4 network (an imported record from
 * another network) and for one that would be one of the host's own addresses.
 */
export function ipv6ForIPv4(plan: Plan6, ipv4: string | null): string | null {
  const v4 = ipv4 === null ? null : parseIPv4(ipv4);
  if (v4 === null || !inNet(plan.net4, v4)) return null;
  const parts = partsOf(plan);
  // The same bits as `plan.network | BigInt(host part)`.
  const low = (parts.low | (v4 - plan.net4.network)) >>> 0;
  if (parts.reservedLow.has(low)) return null;
  const g7 = low >>> 16;
  const g8 = low & 0xffff;
  if (g7 === 0) return g8 === 0 ? parts.head[0] : parts.head[1] + g8.toString(16);
  return parts.head[g8 === 0 ? 2 : 3] + g7.toString(16) + (g8 === 0 ? ':0' : `:${g8.toString(16)}`);
}

/**
 * The IPv4 address whose instance has IPv6 address `ipv6`, the inverse of ipv6ForIPv4: null for
 * an address outside the prefix, with bits set between the prefix and the last 32, or not
 * matching a host address of the IPv4 network.
 */
export function ipv4ForIPv6(plan: Plan6, ipv6: string): string | null {
  const n = parseIPv6(ipv6);
  if (n === null || !inNet6(plan.network, plan.prefix, n) || plan.reserved.includes(n)) return null;
  const host = n & ~prefixMask6(plan.prefix) & ALL;
  if (host >= BigInt(plan.net4.size)) return null;
  return formatIPv4(plan.net4.network + Number(host));
}

/** The IPv4 addresses whose derived IPv6 address would be one of the host's: never allocated. */
export function ipv4sReservedBy(plan: Plan6): string[] {
  const out: string[] = [];
  for (const r of plan.reserved) {
    if (!inNet6(plan.network, plan.prefix, r)) continue;
    const host = r & ~prefixMask6(plan.prefix) & ALL;
    if (host < BigInt(plan.net4.size)) out.push(formatIPv4(plan.net4.network + Number(host)));
  }
  return out;
}

/**
 * A record with the IPv6 address in force: with a plan, the one derived from its IPv4 address (a
 * record imported from md_server gets its address the same way, whatever it stored); without
 * one, what was stored, as before IPv6 was served.
 */
export function withIPv6<T extends { readonly ipv4: string | null; readonly ipv6: string | null }>(rec: T, plan: Plan6 | null): T {
  if (plan === null) return rec;
  const ipv6 = ipv6ForIPv4(plan, rec.ipv4);
  return ipv6 === rec.ipv6 ? rec : { ...rec, ipv6 };
}
