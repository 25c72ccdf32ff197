// Opens the instance store named by `[mdserver] db_file`, importing an md_server JSON database
// into SQLite beside it the first time one is found. The JSON file is never modified.

import fs from 'node:fs';
import path from 'node:path';
import { MdsError } from '../errors.js';
import { isMac } from '../ids.js';
import { moduleLogger } from '../log.js';
import { parseIPv4 } from '../net/ip.js';
import { SqliteStore } from './sqlite.js';
import type { NewInstance, Store } from './store.js';

const log = moduleLogger('store');

export interface DbPaths {
  sqlite: string;
  json: string | null;
}

function looksLikeJson(file: string): boolean {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const buf = Buffer.alloc(64);
      const n = fs.readSync(fd, buf, 0, 64, 0);
      const head = buf.subarray(0, n).toString('utf8').trimStart();
      return head.startsWith('{') || head.startsWith('[');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

/**
 * md_server's default db_file is `/var/lib/mdserver/db_file.json`. A `.json` name (or any file
 * holding JSON) keeps naming the old database, and the SQLite database lives beside it as
 * `<name>.sqlite`; any other name is the SQLite file itself.
 */
export function dbPaths(dbFile: string): DbPaths {
  if (dbFile.endsWith('.json')) return { sqlite: dbFile.slice(0, -5) + '.sqlite', json: dbFile };
  if (fs.existsSync(dbFile) && looksLikeJson(dbFile)) return { sqlite: dbFile + '.sqlite', json: dbFile };
  return { sqlite: dbFile, json: null };
}

function toMillis(v: unknown, fallback: number): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v < 1e11 ? Math.round(v * 1000) : Math.round(v);
  if (typeof v === 'string') {
    const t = Date.parse(v);
    if (!Number.isNaN(t)) return t;
  }
  return fallback;
}

/** Pure: md_server's JSON database (either of its two layouts) -> rows, plus what was skipped. */
export function convertJsonDb(data: unknown): { rows: NewInstance[]; skipped: string[] } {
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
  const now = Date.now();
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
      metadata, arch: null, firstSeen, lastUpdate: toMillis(r['last_update'], firstSeen),
    });
  }
  return { rows, skipped };
}

export function openStore(dbFile: string): Store {
  const paths = dbPaths(dbFile);
  fs.mkdirSync(path.dirname(paths.sqlite), { recursive: true });
  const fresh = !fs.existsSync(paths.sqlite);
  if (paths.json && fresh && fs.existsSync(paths.json)) {
    let data: unknown;
    try {
      data = JSON.parse(fs.readFileSync(paths.json, 'utf8'));
    } catch (e) {
      throw new MdsError('DB_FORMAT', `cannot read md_server database ${paths.json}: ${(e as Error).message}`);
    }
    const { rows, skipped } = convertJsonDb(data);
    // Import into a temporary file and rename it into place, so that a crash half-way through
    // leaves no SQLite file and the import simply runs again at the next start.
    const tmp = `${paths.sqlite}.import-${process.pid}`;
    fs.rmSync(tmp, { force: true });
    const s = new SqliteStore(tmp);
    s.insertMany(rows);
    s.setMeta('imported_from', paths.json);
    s.setMeta('imported_at', new Date().toISOString());
    s.close();
    fs.rmSync(`${tmp}-wal`, { force: true });
    fs.rmSync(`${tmp}-shm`, { force: true });
    fs.renameSync(tmp, paths.sqlite);
    for (const why of skipped) log.warn('skipped an md_server database entry', { why });
    log.info('imported the md_server JSON database into SQLite', {
      from: paths.json, to: paths.sqlite, instances: rows.length, skipped: skipped.length,
    });
  }
  return new SqliteStore(paths.sqlite);
}
