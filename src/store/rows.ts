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
