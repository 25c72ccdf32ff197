// Pure: the host files' text, remembering each host's lines from one rewrite to the next. In a
// cluster every host rewrites both files after each burst of changes anywhere, for a hundred
// thousand instances of which a handful changed: checking and rendering only those keeps a
// rewrite cheap. A host's lines depend on its entry and the configuration alone, so a line is
// reused only for an entry equal in every field under the same configuration object (a reload
// makes a new one and starts afresh); entries are still checked (isSafeHost) before rendering.

import type { Config } from '../config/index.js';
import { checkHost, dhcpLiner, dnsLiner, renderServiceNames, type HostEntry } from './render.js';

interface Rendered {
  readonly entry: HostEntry;
  /** Empty when the entry failed isSafeHost (or has nothing to list). */
  readonly dhcp: string;
  readonly dns: string;
  readonly fit: boolean;
}

function same(a: HostEntry, b: HostEntry): boolean {
  return a.mac === b.mac && a.hostName === b.hostName && a.ipv4 === b.ipv4 && a.ipv6 === b.ipv6;
}

export class HostLines {
  private cfg: Config | null = null;
  /** By MAC (one per instance), the lines of the last rewrite's entries only. */
  private last = new Map<string, Rendered>();

  /** Both host files' text for `hosts` (in their order), and the entries left out as unfit. */
  render(cfg: Config, hosts: readonly HostEntry[]): { dhcpHosts: string; dnsHosts: string; unfit: HostEntry[] } {
    if (cfg !== this.cfg) {
      this.cfg = cfg;
      this.last = new Map();
    }
    const dhcpLine = dhcpLiner(cfg.dnsmasq.leaseLen, cfg.dnsmasq.serviceNames);
    const dnsLine = dnsLiner(cfg);
    const next = new Map<string, Rendered>();
    const dhcp: string[] = [];
    const dns: string[] = [renderServiceNames(cfg)];
    const unfit: HostEntry[] = [];
    for (const h of hosts) {
      let r = this.last.get(h.mac);
      if (!r || !same(r.entry, h)) {
        const safe = checkHost(h);
        r = safe ? { entry: h, dhcp: dhcpLine(safe), dns: dnsLine(safe), fit: true } : { entry: h, dhcp: '', dns: '', fit: false };
      }
      next.set(h.mac, r);
      if (!r.fit) unfit.push(h);
      dhcp.push(r.dhcp);
      dns.push(r.dns);
    }
    this.last = next;
    return { dhcpHosts: dhcp.join(''), dnsHosts: dns.join(''), unfit };
  }
}
