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

/** The two host files' text, and the entries left out of them as unfit. */
export interface RenderedFiles {
  readonly dhcpHosts: string;
  readonly dnsHosts: string;
  readonly unfit: HostEntry[];
}

/** Hosts rendered between two turns of the event loop: about 10 ms on a slow machine. */
const SLICE = 8192;

export class HostLines {
  private cfg: Config | null = null;
  /**
   * The lines of each entry object seen: the replicated store and the registry hand out the same
   * object for an unchanged host (instances/hostNames.ts EntryMemo), so most hosts are found here
   * without even reading their fields.
   */
  private byEntry = new WeakMap<HostEntry, Rendered>();
  /** By MAC (one per instance), for entries built afresh at each rewrite (the SQLite store's). */
  private byMac = new Map<string, Rendered>();

  /**
   * Both host files' text for `hosts` (in their order) and the entries left out as unfit, a slice
   * of `SLICE` hosts at a time, then each file's text: whoever drives the steps may let the event
   * loop turn between two of them (see files.ts). `hosts` must not change
   * meanwhile; what is remembered is only ever replaced whole, so abandoning the steps is safe.
   */
  *renderSteps(cfg: Config, hosts: readonly HostEntry[]): Generator<void, RenderedFiles> {
    if (cfg !== this.cfg) {
      this.cfg = cfg;
      this.byEntry = new WeakMap();
      this.byMac = new Map();
    }
    const dhcpLine = dhcpLiner(cfg.dnsmasq.leaseLen, cfg.dnsmasq.serviceNames);
    const dnsLine = dnsLiner(cfg);
    const dhcp: string[] = new Array<string>(hosts.length);
    const dns: string[] = new Array<string>(hosts.length + 1);
    dns[0] = renderServiceNames(cfg);
    const unfit: HostEntry[] = [];
    for (let i = 0; i < hosts.length; i++) {
      if (i > 0 && i % SLICE === 0) yield;
      const h = hosts[i] as HostEntry;
      let r = this.byEntry.get(h);
      if (r === undefined) {
        const old = this.byMac.get(h.mac);
        if (old !== undefined && same(old.entry, h)) r = old;
        else {
          const safe = checkHost(h);
          r = safe ? { entry: h, dhcp: dhcpLine(safe), dns: dnsLine(safe), fit: true } : { entry: h, dhcp: '', dns: '', fit: false };
        }
        this.byEntry.set(h, r);
        this.byMac.set(h.mac, r);
      }
      if (!r.fit) unfit.push(h);
      dhcp[i] = r.dhcp;
      dns[i + 1] = r.dns;
    }
    this.prune(hosts);
    yield;
    const dhcpHosts = dhcp.join('');
    yield;
    return { dhcpHosts, dnsHosts: dns.join(''), unfit };
  }

  /** Forgets the MACs of hosts gone since: the map is rebuilt once it holds twice as many as are listed. */
  private prune(hosts: readonly HostEntry[]): void {
    if (this.byMac.size <= 2 * hosts.length + 1024) return;
    const next = new Map<string, Rendered>();
    for (const h of hosts) {
      const r = this.byEntry.get(h);
      if (r !== undefined) next.set(h.mac, r);
    }
    this.byMac = next;
  }
}
