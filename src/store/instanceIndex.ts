// The instances of a replicated store, held in memory and indexed the ways metadata requests and
// the dnsmasq files look them up: a request never waits on the network. Pure.

import type { HostRecord, Instance } from './store.js';
import { Replica } from './replica.js';

/** Keeps `index[key] = uuid` in step, removing an entry only if it still points at this record. */
function reindex(index: Map<string, string>, uuid: string, before: string | null | undefined, after: string | null | undefined): void {
  if (before != null && before !== after && index.get(before) === uuid) index.delete(before);
  if (after != null) index.set(after, uuid);
}

function byName(a: Instance, b: Instance): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** `a` and `b` (each ordered by name) as one ordered list; neither is changed. */
function merged(a: readonly Instance[], b: readonly Instance[]): Instance[] {
  const out = new Array<Instance>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = byName(b[j] as Instance, a[i] as Instance) < 0 ? (b[j++] as Instance) : (a[i++] as Instance);
  while (i < a.length) out[k++] = a[i++] as Instance;
  while (j < b.length) out[k++] = b[j++] as Instance;
  return out;
}

export class InstanceIndex {
  private readonly byNameIdx = new Map<string, string>();
  private readonly byIPv4Idx = new Map<string, string>();
  private readonly byMacIdx = new Map<string, string>();
  /**
   * Every instance ordered by name, once asked for, and the records added and replaced since.
   * A rewrite of dnsmasq's files reads the list after every burst of changes anywhere in the
   * cluster: sorting a hundred thousand names each time was most of what it cost, merging in the
   * few that changed is a small part of that.
   */
  private sorted: readonly Instance[] | null = null;
  private readonly added = new Set<Instance>();
  private readonly dropped = new Set<Instance>();
  readonly rows = new Replica<Instance>((uuid, before, after) => {
    reindex(this.byNameIdx, uuid, before?.name, after?.name);
    reindex(this.byIPv4Idx, uuid, before?.ipv4, after?.ipv4);
    reindex(this.byMacIdx, uuid, before?.mac, after?.mac);
    if (this.sorted !== null) this.note(before, after);
  });

  /** Keeps `added` and `dropped` as the difference between `sorted` and the rows, in any order of changes. */
  private note(before: Instance | undefined, after: Instance | undefined): void {
    if (before === after) return;
    if (before && !this.added.delete(before)) this.dropped.add(before);
    if (after && !this.dropped.delete(after)) this.added.add(after);
  }

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

  /**
   * Every instance ordered by name (as SQLite's BINARY collation orders them). The list is never
   * changed once handed out: a change makes a new one.
   */
  private ordered(): readonly Instance[] {
    const changes = this.added.size + this.dropped.size;
    if (this.sorted === null || changes > this.rows.size / 4) {
      this.sorted = [...this.rows.values()].sort(byName);
    } else if (changes > 0) {
      const dropped = this.dropped;
      const kept = dropped.size === 0 ? this.sorted : this.sorted.filter((i) => !dropped.has(i));
      this.sorted = merged(kept, [...this.added].sort(byName));
    }
    this.added.clear();
    this.dropped.clear();
    return this.sorted;
  }

  /** Every instance ordered by name, in a list of the caller's own. */
  all(): Instance[] {
    return [...this.ordered()];
  }

  /** The same records, read only: the dnsmasq files read this after every change. */
  hostEntries(): readonly HostRecord[] {
    return this.ordered();
  }

  count(): number {
    return this.rows.size;
  }
}
