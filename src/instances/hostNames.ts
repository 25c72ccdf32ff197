// Pure: one DNS name, one address. Uploads cannot give two instances the same host name any more
// (the store refuses it, ignoring case), but a database from before that rule, or one imported
// from md_server, may hold such pairs. Their VMs keep their records and addresses; in dnsmasq's
// files the instance first seen keeps the name, and each other one is listed under the name
// followed by the start of its uuid, so that no name ever answers with two addresses.

import type { HostEntry, HostRecord } from '../store/store.js';

export interface HostNameCollision {
  /** The host name as the instance that keeps it spells it. */
  readonly hostName: string;
  readonly kept: { readonly name: string; readonly uuid: string };
  /** The other instances, each with the name it is listed under instead. */
  readonly renamed: readonly { readonly name: string; readonly uuid: string; readonly listedAs: string }[];
}

const MAX_LABEL = 63;

function keyOf(hostName: string): string {
  return hostName.toLowerCase();
}

/** `<hostName>-<8 hex of the uuid>`, then with `-2`, `-3`… until a name no one holds; one label. */
function alternateName(r: HostRecord, taken: { has(key: string): boolean }): string {
  const tag = r.uuid.replace(/-/g, '').slice(0, 8);
  for (let n = 1; ; n++) {
    const suffix = n === 1 ? `-${tag}` : `-${tag}-${n}`;
    const name = `${r.hostName.slice(0, MAX_LABEL - suffix.length).replace(/-+$/, '')}${suffix}`;
    if (!taken.has(keyOf(name))) return name;
  }
}

function firstSeenFirst(a: HostRecord, b: HostRecord): number {
  return a.firstSeen - b.firstSeen || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * The entries for dnsmasq's files, in the order given, with every host name unique ignoring case
 * and the IPv6 address `ipv6Of` gives, and the collisions that had to be resolved. Groups are
 * built only for names that repeat: none do in a database uploads filled, and this runs over
 * every instance at each rewrite.
 */
export function uniqueHostNames(
  records: readonly HostRecord[],
  ipv6Of: (r: HostRecord) => string | null = (r) => r.ipv6,
  memo?: EntryMemo,
): { entries: HostEntry[]; collisions: HostNameCollision[] } {
  /** Each name's first record, by its position in `records`. */
  const first = new Map<string, number>();
  /** The names that repeat: the position of their first record, and all their records. */
  const repeated = new Map<string, { at: number; group: HostRecord[] }>();
  records.forEach((r, at) => {
    const k = keyOf(r.hostName);
    const f = first.get(k);
    if (f === undefined) first.set(k, at);
    else {
      const g = repeated.get(k);
      if (g) g.group.push(r);
      else repeated.set(k, { at: f, group: [records[f] as HostRecord, r] });
    }
  });
  const { listedAs, collisions } = resolve([...repeated.values()].sort((a, b) => a.at - b.at).map((g) => g.group), first);
  const entryOf = (r: HostRecord, hostName: string): HostEntry => ({ hostName, mac: r.mac, ipv4: r.ipv4, ipv6: ipv6Of(r) });
  const entries = records.map((r) => {
    const hostName = (listedAs.size > 0 && listedAs.get(r)) || r.hostName;
    return memo ? memo.entry(r, hostName, entryOf) : entryOf(r, hostName);
  });
  return { entries, collisions };
}

/**
 * Hands out the same entry object for a record as long as the record object and its listed name
 * stay the same, so that the dnsmasq files can tell an unchanged host by identity alone (see
 * dnsmasq/hostLines.ts). The replicated store keeps a record's object until that record changes.
 * `key` is what else an entry depends on (the IPv6 plan): a new key starts afresh.
 */
export class EntryMemo {
  private of = new WeakMap<HostRecord, HostEntry>();
  private key: unknown = undefined;

  use(key: unknown): this {
    if (key !== this.key) {
      this.key = key;
      this.of = new WeakMap();
    }
    return this;
  }

  entry(r: HostRecord, hostName: string, make: (r: HostRecord, hostName: string) => HostEntry): HostEntry {
    const held = this.of.get(r);
    if (held !== undefined && held.hostName === hostName) return held;
    const made = make(r, hostName);
    this.of.set(r, made);
    return made;
  }
}

/** For each group of records sharing a name (in order of their first record): who keeps it, who is renamed to what. */
function resolve(groups: readonly HostRecord[][], names: ReadonlyMap<string, unknown>): { listedAs: Map<HostRecord, string>; collisions: HostNameCollision[] } {
  const listedAs = new Map<HostRecord, string>();
  const collisions: HostNameCollision[] = [];
  if (groups.length === 0) return { listedAs, collisions };
  // Every name held, and each replacement once given: no copy of a hundred thousand names.
  const given = new Set<string>();
  const taken = { has: (k: string): boolean => names.has(k) || given.has(k) };
  for (const group of groups) {
    const [keeper, ...others] = [...group].sort(firstSeenFirst) as [HostRecord, ...HostRecord[]];
    const renamed = others.map((r) => {
      const name = alternateName(r, taken);
      given.add(keyOf(name));
      listedAs.set(r, name);
      return { name: r.name, uuid: r.uuid, listedAs: name };
    });
    collisions.push({ hostName: keeper.hostName, kept: { name: keeper.name, uuid: keeper.uuid }, renamed });
  }
  return { listedAs, collisions };
}
