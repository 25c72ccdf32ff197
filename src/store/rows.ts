// The instances table's columns as both backends read them back, and the record made of them.
// One reading of a row, so the two backends cannot drift apart on what an instance is.

import { safeHostName } from '../names.js';
import type { Instance } from './store.js';

export interface InstanceRow {
  name: string;
  uuid: string;
  mac: string;
  ipv4: string | null;
  ipv6: string | null;
  location: string;
  /** JSON of the `mdserver:` metadata. */
  metadata: string;
  arch: string | null;
  nwfilter: string | null;
  host: string;
  /** Milliseconds since the epoch; PostgreSQL's BIGINT arrives as a string. */
  first_seen: number | string;
  last_update: number | string;
}

export function rowToInstance(r: InstanceRow): Instance {
  let metadata: Record<string, string> = {};
  try {
    metadata = JSON.parse(r.metadata) as Record<string, string>;
  } catch {
    // A hand-edited row must not take the server down; it simply has no metadata.
  }
  return {
    name: r.name,
    hostName: safeHostName(r.name, r.uuid),
    uuid: r.uuid,
    mac: r.mac,
    ipv4: r.ipv4,
    ipv6: r.ipv6,
    location: r.location,
    metadata,
    arch: r.arch,
    nwfilter: r.nwfilter,
    host: r.host,
    firstSeen: Number(r.first_seen),
    lastUpdate: Number(r.last_update),
  };
}

type FieldEqual = { readonly [K in keyof Instance]-?: (a: Instance[K], b: Instance[K]) => boolean };
const same = (a: unknown, b: unknown): boolean => a === b;

/** Same keys in the same order (the order is served: tags, OpenStack's `meta`), same values. */
function sameEntries(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/**
 * How each field of two readings of a record is compared. A mapped type over `Instance`, so a
 * field added there does not compile until it is given a comparison here: a cache that keeps what
 * it derived from a record while the record is the same (metadata/service.ts) must never miss one.
 */
const FIELD_EQUAL: FieldEqual = {
  name: same, hostName: same, uuid: same, mac: same, ipv4: same, ipv6: same, location: same,
  metadata: sameEntries, arch: same, nwfilter: same, host: same, firstSeen: same, lastUpdate: same,
};
const FIELDS = Object.keys(FIELD_EQUAL) as (keyof Instance)[];

/**
 * Whether `a` and `b` are the same record in every field. The replicated store hands out the same
 * object until the row changes (identity answers at once); SQLite reads a fresh one each time.
 */
export function sameInstance(a: Instance, b: Instance): boolean {
  if (a === b) return true;
  return FIELDS.every((k) => (FIELD_EQUAL[k] as (x: unknown, y: unknown) => boolean)(a[k], b[k]));
}
