// Pure: choosing a free IPv4 address in the metadata network.

import { broadcast, type Net4 } from '../net/ip.js';

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
