// The instances of a replicated store, held in memory and indexed the ways metadata requests and
// the dnsmasq files look them up: a request never waits on the network. Pure.

import type { HostRecord, Instance } from './store.js';
import { Replica } from './replica.js';

/** Keeps `index[key] = uuid` in step, removing an entry only if it still points at this record. */
function reindex(index: Map<string, string>, uuid: string, before: string | null | undefined, after: string | null | undefined): void {
  if (before != null && before !== after && index.get(before) === uuid) index.delete(before);
  if (after != null) index.set(after, uuid);
}

export class InstanceIndex {
  private readonly byNameIdx = new Map<string, string>();
  private readonly byIPv4Idx = new Map<string, string>();
  private readonly byMacIdx = new Map<string, string>();
  private sorted: { generation: number; list: Instance[] } | null = null;
  readonly rows = new Replica<Instance>((uuid, before, after) => {
    reindex(this.byNameIdx, uuid, before?.name, after?.name);
    reindex(this.byIPv4Idx, uuid, before?.ipv4, after?.ipv4);
    reindex(this.byMacIdx, uuid, before?.mac, after?.mac);
  });

  get generation(): number {
    return this.rows.generation;
  }

  byUuid(uuid: string): Instance | undefined {
    return this.rows.get(uuid);
  }

  private via(index: Map<string, string>, key: string): Instance | undefined {
    const uuid = index.get(key);
    return uuid === undefined ? undefined : this.rows.get(uuid);
  }

  byName(name: string): Instance | undefined {
    return this.via(this.byNameIdx, name);
  }

  byIPv4(ip: string): Instance | undefined {
    return this.via(this.byIPv4Idx, ip);
  }

  byMac(mac: string): Instance | undefined {
    return this.via(this.byMacIdx, mac);
  }

  /** Every instance ordered by name (as SQLite's BINARY collation orders them), built once per change. */
  all(): Instance[] {
    if (this.sorted?.generation !== this.generation) {
      const list = [...this.rows.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      this.sorted = { generation: this.generation, list };
    }
    return [...this.sorted.list];
  }

  hostEntries(): HostRecord[] {
    return this.all().map((i) => ({ hostName: i.hostName, mac: i.mac, ipv4: i.ipv4, ipv6: i.ipv6, name: i.name, uuid: i.uuid, firstSeen: i.firstSeen, host: i.host }));
  }

  count(): number {
    return this.rows.size;
  }
}
