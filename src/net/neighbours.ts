// The kernel's neighbour tables: which MAC the host last saw behind an address. IPv4's is read
// from /proc/net/arp; IPv6's has no file, so `ip -6 neigh show` prints it. Used by `verify_mac`
// to catch a VM that took another VM's address, and to find the VM behind a link-local address.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { canonicalIPv6 } from './ip6.js';

/** Pure: `/proc/net/arp` text -> address -> lower-case MAC, complete entries only. */
export function parseArpTable(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const [ip, , flags, mac] = f;
    // Flag 0x2 (ATF_COM) marks a completed entry; incomplete ones carry 00:00:00:00:00:00.
    if (!ip || !flags || !mac || (Number(flags) & 0x2) === 0) continue;
    out.set(ip, mac.toLowerCase());
  }
  return out;
}

export class NeighbourTable {
  private table = new Map<string, string>();
  private readAt = -Infinity;

  /**
   * @param maxAgeMs how long one read of the table is trusted; a lookup that misses always
   *   re-reads once, since the entry for a new connection may be younger than the last read.
   */
  constructor(private readonly file = '/proc/net/arp', private readonly maxAgeMs = 250) {}

  private refresh(): void {
    try {
      this.table = parseArpTable(fs.readFileSync(this.file, 'utf8'));
    } catch {
      this.table = new Map();
    }
    this.readAt = performance.now();
  }

  macOf(ip: string): string | undefined {
    if (performance.now() - this.readAt > this.maxAgeMs) this.refresh();
    let mac = this.table.get(ip);
    if (mac === undefined) {
      this.refresh();
      mac = this.table.get(ip);
    }
    return mac;
  }
}

/** One IPv6 neighbour: the interface it was seen on and its MAC. */
export interface Neighbour6 {
  readonly dev: string;
  readonly mac: string;
}

/**
 * Pure: `ip -6 neigh show` text -> canonical address -> the neighbours seen with it, entries
 * with a link-layer address only (FAILED and INCOMPLETE ones have none).
 */
export function parseNeighbours6(text: string): Map<string, Neighbour6[]> {
  const out = new Map<string, Neighbour6[]>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    const addr = f[0] ? canonicalIPv6(f[0]) : null;
    const dev = f[f.indexOf('dev') + 1];
    const mac = f[f.indexOf('lladdr') + 1];
    if (addr === null || !f.includes('dev') || !f.includes('lladdr') || !dev || !mac) continue;
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) continue;
    out.set(addr, [...(out.get(addr) ?? []), { dev, mac: mac.toLowerCase() }]);
  }
  return out;
}

/** Where `ip` is: systemd's PATH has it, a shell's may not have /usr/sbin. */
function ipCommand(): string {
  for (const p of ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip']) if (fs.existsSync(p)) return p;
  return 'ip';
}

/** Reads the IPv6 table; replaceable so that the parsing and caching can be tested on their own. */
export type Neighbours6Reader = () => string;

export const readNeighbours6: Neighbours6Reader = () =>
  execFileSync(ipCommand(), ['-6', 'neigh', 'show'], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] });

export class NeighbourTable6 {
  private table = new Map<string, Neighbour6[]>();
  private readAt = -Infinity;

  /**
   * @param maxAgeMs how long one read is trusted
   * @param minGapMs the least time between two reads: a lookup that misses re-reads the table (the
   *   entry may be younger than the last read), but a flood of unknown sources costs one `ip`
   *   run per gap, not one per request (a run takes some 8 ms on a busy host: at most 10 a second)
   */
  constructor(private readonly read: Neighbours6Reader = readNeighbours6, private readonly maxAgeMs = 250, private readonly minGapMs = 100) {}

  private refresh(): void {
    try {
      this.table = parseNeighbours6(this.read());
    } catch {
      this.table = new Map();
    }
    this.readAt = performance.now();
  }

  /** The MAC behind `ip`, on interface `dev` when given (a link-local address means nothing elsewhere). */
  macOf(ip: string, dev?: string): string | undefined {
    const addr = canonicalIPv6(ip);
    if (addr === null) return undefined;
    const age = performance.now() - this.readAt;
    if (age > this.maxAgeMs) this.refresh();
    const find = (): string | undefined => this.table.get(addr)?.find((n) => dev === undefined || n.dev === dev)?.mac;
    let mac = find();
    if (mac === undefined && performance.now() - this.readAt > this.minGapMs) {
      this.refresh();
      mac = find();
    }
    return mac;
  }
}
