// The kernel's IPv4 neighbour table (/proc/net/arp): which MAC the host last saw behind an
// address. Used by `verify_mac` to catch a VM that took another VM's address.

import fs from 'node:fs';

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
