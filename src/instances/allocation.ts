// Pure: choosing the address of a new instance in the metadata network. Its IPv6 address is
// derived from the IPv4 one (net/ip6.ts), so that one allocation and one conflict rule cover both:
// the IPv4 addresses whose derived IPv6 address is the host's are never handed out.

import type { Config } from '../config/index.js';
import { broadcast, formatIPv4, parseIPv4, type Net4 } from '../net/ip.js';
import { ipv4sReservedBy } from '../net/ip6.js';
import type { Allocate } from '../store/store.js';

/** The settings allocation reads: the network and the host's own addresses in it. */
export interface PoolSettings {
  readonly dnsmasq: Pick<Config['dnsmasq'], 'net' | 'gateway' | 'listenAddress'> & { readonly plan6?: Config['dnsmasq']['plan6'] };
  readonly mdserver: Pick<Config['mdserver'], 'listenAddress'>;
}

/**
 * The host's own addresses, never handed to a VM (besides the network and broadcast addresses,
 * which pickIPv4 leaves out itself): the gateway, mdserver's and dnsmasq's listen addresses.
 * Anything that is not an IPv4 address (an IPv6 listen address, none) reserves nothing.
 */
export function reservedAddresses(addresses: readonly (string | null)[]): Set<number> {
  const out = new Set<number>();
  for (const a of addresses) {
    const n = a ? parseIPv4(a) : null;
    if (n !== null) out.add(n);
  }
  return out;
}

/**
 * Picks a random free host address in `net`, never the network or broadcast address nor any in
 * `reserved`. A few random probes find a free address quickly while the pool is sparse; after
 * that a scan from a random start guarantees an answer (or null when the pool is full) in at most
 * one pass.
 */
export function pickIPv4(
  net: Net4,
  reserved: ReadonlySet<number>,
  isUsed: (addr: number) => boolean,
  random: () => number = Math.random,
): number | null {
  const first = net.network + 1;
  const count = net.size - 2;
  if (count <= 0) return null;
  const free = (a: number): boolean => a !== broadcast(net) && !reserved.has(a) && !isUsed(a);
  for (let i = 0; i < 8; i++) {
    const a = first + Math.floor(random() * count);
    if (free(a)) return a;
  }
  const start = Math.floor(random() * count);
  for (let i = 0; i < count; i++) {
    const a = first + ((start + i) % count);
    if (free(a)) return a;
  }
  return null;
}

/** The store's allocator for `cfg`: a random free address in the network, none of the host's. */
export function ipv4Allocator(cfg: PoolSettings, random: () => number = Math.random): Allocate {
  const net = cfg.dnsmasq.net;
  const plan6 = cfg.dnsmasq.plan6 ?? null;
  const reserved = reservedAddresses([
    cfg.dnsmasq.gateway, cfg.mdserver.listenAddress, cfg.dnsmasq.listenAddress, ...(plan6 ? ipv4sReservedBy(plan6) : []),
  ]);
  return (isUsed) => {
    const n = pickIPv4(net, reserved, (a) => isUsed(formatIPv4(a)), random);
    return n === null ? null : formatIPv4(n);
  };
}
