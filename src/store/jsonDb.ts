// Pure: md_server's JSON database, in either of its two layouts, -> records for the store, plus
// what was skipped and why.

import { MdsError } from '../errors.js';
import { isMac } from '../ids.js';
import { parseIPv4 } from '../net/ip.js';
import type { NewInstance } from './store.js';

function toMillis(v: unknown, fallback: number): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v < 1e11 ? Math.round(v * 1000) : Math.round(v);
  if (typeof v === 'string') {
    const t = Date.parse(v);
    if (!Number.isNaN(t)) return t;
  }
  return fallback;
}

/**
 * The rows to insert. An entry without a name, uuid or valid MAC, or one that repeats an earlier
 * entry's name, uuid, MAC or address, is skipped with the reason; times in seconds or
 * milliseconds since the epoch, or as date strings, become milliseconds (a missing first sighting
 * is `now`).
 */
export function convertJsonDb(data: unknown, now = Date.now()): { rows: NewInstance[]; skipped: string[] } {
  let entries: unknown;
  if (Array.isArray(data)) entries = data;
  else if (data && typeof data === 'object' && Array.isArray((data as Record<string, unknown>)['entries'])) {
    entries = (data as Record<string, unknown>)['entries'];
  } else {
    throw new MdsError('DB_FORMAT', 'not an md_server database: expected a list of entries or {metadata, entries}');
  }
  const rows: NewInstance[] = [];
  const skipped: string[] = [];
  const seen = { name: new Set<string>(), uuid: new Set<string>(), mac: new Set<string>(), ipv4: new Set<string>() };
  for (const [i, e] of (entries as unknown[]).entries()) {
    const r = (e ?? {}) as Record<string, unknown>;
    const name = typeof r['domain_name'] === 'string' ? r['domain_name'] : '';
    const uuid = typeof r['domain_uuid'] === 'string' ? r['domain_uuid'].toLowerCase() : '';
    const mac = typeof r['mds_mac'] === 'string' ? r['mds_mac'].toLowerCase() : '';
    const ipv4 = typeof r['mds_ipv4'] === 'string' && parseIPv4(r['mds_ipv4']) !== null ? r['mds_ipv4'] : null;
    const label = name || `entry ${i}`;
    if (!name || !uuid || !isMac(mac)) {
      skipped.push(`${label}: missing name, uuid or a valid MAC`);
      continue;
    }
    if (seen.name.has(name) || seen.uuid.has(uuid) || seen.mac.has(mac) || (ipv4 && seen.ipv4.has(ipv4))) {
      skipped.push(`${label}: duplicates an earlier entry's name, uuid, MAC or address`);
      continue;
    }
    seen.name.add(name);
    seen.uuid.add(uuid);
    seen.mac.add(mac);
    if (ipv4) seen.ipv4.add(ipv4);
    const metadata: Record<string, string> = {};
    const md = r['domain_metadata'];
    if (md && typeof md === 'object') {
      for (const [k, v] of Object.entries(md as Record<string, unknown>)) if (typeof v === 'string') metadata[k] = v;
    }
    const firstSeen = toMillis(r['first_seen'], now);
    rows.push({
      name, uuid, mac, ipv4,
      ipv6: typeof r['mds_ipv6'] === 'string' ? r['mds_ipv6'] : null,
      location: typeof r['location'] === 'string' ? r['location'] : '',
      metadata, arch: null, nwfilter: null, firstSeen, lastUpdate: toMillis(r['last_update'], firstSeen),
    });
  }
  return { rows, skipped };
}
