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
function alternateName(r: HostRecord, taken: ReadonlySet<string>): string {
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
 * The entries for dnsmasq's files, in the order given, with every host name unique ignoring case,
 * and the collisions that had to be resolved.
 */
export function uniqueHostNames(records: readonly HostRecord[]): { entries: HostEntry[]; collisions: HostNameCollision[] } {
  const groups = new Map<string, HostRecord[]>();
  for (const r of records) {
    const k = keyOf(r.hostName);
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  const taken = new Set(groups.keys());
  const listedAs = new Map<HostRecord, string>();
  const collisions: HostNameCollision[] = [];
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    const [keeper, ...others] = [...group].sort(firstSeenFirst) as [HostRecord, ...HostRecord[]];
    const renamed = others.map((r) => {
      const name = alternateName(r, taken);
      taken.add(keyOf(name));
      listedAs.set(r, name);
      return { name: r.name, uuid: r.uuid, listedAs: name };
    });
    collisions.push({ hostName: keeper.hostName, kept: { name: keeper.name, uuid: keeper.uuid }, renamed });
  }
  const entries = records.map((r) => ({ hostName: listedAs.get(r) ?? r.hostName, mac: r.mac, ipv4: r.ipv4, ipv6: r.ipv6 }));
  return { entries, collisions };
}
