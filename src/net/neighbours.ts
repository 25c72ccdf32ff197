// The kernel's neighbour tables: which MAC the host last saw behind an address. IPv4's is read
// from /proc/net/arp; IPv6's has no file, so `ip -6 neigh show` prints it. Used by `verify_mac`
// to catch a VM that took another VM's address, and to find the VM behind a link-local address.

import { execFile } from 'node:child_process';
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
export type Neighbours6Reader = () => Promise<string>;

export const readNeighbours6: Neighbours6Reader = () =>
  new Promise((resolve, reject) => {
    execFile(ipCommand(), ['-6', 'neigh', 'show'], { encoding: 'utf8', timeout: 2000 }, (err, out) => (err ? reject(new Error(err.message)) : resolve(out)));
  });

/**
 * The IPv6 neighbour table, read by `ip -6 neigh` off the event loop. A caller first `settle()`s
 * (which waits only when the table may not know it yet), then asks `macOf()`, which never runs
 * anything. Every waiter shares one read: a flood of unknown sources costs one `ip` run per
 * `minGapMs`, not one per request, and no request waits on another's run of `ip`.
 */
export class NeighbourTable6 {
  private table = new Map<string, Neighbour6[]>();
  /** When the current table's read started (a younger entry may be missing from it). */
  private readStart = -Infinity;
  /** The read that waiters share, if one is pending or running. */
  private next: Promise<void> | null = null;
  private running = false;

  /**
   * @param maxAgeMs how long one read is trusted for an address it holds
   * @param minGapMs the least time between the starts of two reads (a run takes some 8 ms on a
   *   busy host): a new source waits at most this long for the read that will see it
   */
  constructor(private readonly read: Neighbours6Reader = readNeighbours6, private readonly maxAgeMs = 250, private readonly minGapMs = 100) {}

  /**
   * Resolves once the table can answer for `ip`: at once when a read younger than `maxAgeMs` has
   * it, else after a read that started after this call (the entry for a new connection may be
   * younger than the last read). Undefined means nothing to wait for, so the common path stays
   * synchronous.
   */
  settle(ip: string, dev?: string): Promise<void> | undefined {
    const now = performance.now();
    if (now - this.readStart <= this.maxAgeMs && this.find(ip, dev) !== undefined) return undefined;
    return this.readAfter(now);
  }

  /** A read that starts no earlier than `t`, shared by everyone who needs one. */
  private readAfter(t: number): Promise<void> {
    if (this.next === null) this.next = this.schedule();
    const pending = this.next;
    // A read already running that started before `t` may miss the caller: chain one after it.
    return this.running && this.readStart < t ? pending.then(() => this.readAfter(t)) : pending;
  }

  private async schedule(): Promise<void> {
    // Always a timer, even when the gap has passed: callers arriving in the same turn of the
    // event loop (a burst of new connections) then share this read.
    const wait = Math.max(0, this.readStart + this.minGapMs - performance.now());
    await new Promise((r) => setTimeout(r, wait));
    this.running = true;
    this.readStart = performance.now();
    try {
      this.table = parseNeighbours6(await this.read());
    } catch {
      this.table = new Map();
    } finally {
      this.running = false;
      this.next = null;
    }
  }

  /** The MAC behind `ip` in the last read, on interface `dev` when given (a link-local address means nothing elsewhere). */
  macOf(ip: string, dev?: string): string | undefined {
    return this.find(ip, dev);
  }

  private find(ip: string, dev?: string): string | undefined {
    const addr = canonicalIPv6(ip);
    if (addr === null) return undefined;
    return this.table.get(addr)?.find((n) => dev === undefined || n.dev === dev)?.mac;
  }
}
