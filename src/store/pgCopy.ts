// Copies a host's records (its SQLite file, or md_server's JSON file) into the shared PostgreSQL
// store: what `mdserver store copy` does before a host joins a cluster. All or nothing, in one
// transaction holding the change counter's lock, so hosts already on the store see the copied
// records as one change. A record already there unchanged is skipped (a second run copies
// nothing); one that would take another's uuid, name, MAC, address or host name is a conflict,
// reported with both records, and then nothing is written.

import fs from 'node:fs';
import pg from 'pg';
import { MdsError } from '../errors.js';
import { convertJsonDb } from './jsonDb.js';
import { dbPaths } from './open.js';
import { CHANNEL } from './pgFeed.js';
import { insertRow, type PgRow } from './pgInstances.js';
import { migratePg } from './pgSchema.js';
import { hostKey } from './schema.js';
import { SqliteStore } from './sqlite.js';
import type { NewInstance } from './store.js';

export interface CopyReport {
  /** Records in the source. */
  total: number;
  copied: number;
  /** Already in the store as they are. */
  present: number;
  /** Each conflict: the source record and the stored one it collides with, in words. */
  conflicts: string[];
  /** Source entries that could not be read (md_server JSON only). */
  skipped: string[];
}

/** The records of `file`: md_server's JSON database, or mdserver's SQLite file. */
export function readSource(file: string): { rows: NewInstance[]; skipped: string[] } {
  if (!fs.existsSync(file)) throw new MdsError('DB_FORMAT', `${file} does not exist`);
  const paths = dbPaths(file);
  if (paths.json === file) {
    try {
      return convertJsonDb(JSON.parse(fs.readFileSync(file, 'utf8')));
    } catch (e) {
      if (e instanceof MdsError) throw e;
      throw new MdsError('DB_FORMAT', `cannot read md_server database ${file}: ${(e as Error).message}`);
    }
  }
  const s = new SqliteStore(paths.sqlite);
  try {
    return { rows: s.all().map(({ hostName: _derived, ...r }) => r), skipped: [] };
  } finally {
    s.close();
  }
}

const describeRow = (r: Pick<NewInstance, 'name' | 'uuid' | 'mac' | 'ipv4'> & { host?: string }): string =>
  `${r.name} (uuid ${r.uuid}, MAC ${r.mac}, address ${r.ipv4 ?? 'none'}${r.host ? `, host ${r.host}` : ''})`;

/** Pure: which source rows are new, which are there already, which conflict (with what). */
export function plan(rows: readonly NewInstance[], stored: readonly PgRow[]): { add: NewInstance[]; present: number; conflicts: string[] } {
  const by = { uuid: new Map<string, PgRow>(), name: new Map<string, PgRow>(), mac: new Map<string, PgRow>(), ipv4: new Map<string, PgRow>(), key: new Map<string, PgRow>() };
  const index = (r: PgRow): void => {
    by.uuid.set(r.uuid, r);
    by.name.set(r.name, r);
    by.mac.set(r.mac, r);
    if (r.ipv4) by.ipv4.set(r.ipv4, r);
    by.key.set(hostKey(r.name, r.uuid), r);
  };
  stored.forEach(index);
  const out = { add: [] as NewInstance[], present: 0, conflicts: [] as string[] };
  for (const r of rows) {
    const same = by.uuid.get(r.uuid);
    if (same && same.name === r.name && same.mac === r.mac && same.ipv4 === r.ipv4) {
      out.present++;
      continue;
    }
    const other = same ?? by.name.get(r.name) ?? by.mac.get(r.mac) ?? (r.ipv4 ? by.ipv4.get(r.ipv4) : undefined) ?? by.key.get(hostKey(r.name, r.uuid));
    if (other) {
      out.conflicts.push(`${describeRow(r)} conflicts with the stored ${describeRow(other)}`);
      continue;
    }
    out.add.push(r);
    // Later source rows are checked against this one too.
    index({ ...r, metadata: '', arch: r.arch, host: r.host ?? '', first_seen: 0, last_update: 0, version: 0, nwfilter: r.nwfilter, location: r.location, ipv6: r.ipv6 });
  }
  return out;
}

/** Copies `source` into the store at `url`; writes nothing when any record conflicts. */
export async function copyToPg(
  source: { rows: NewInstance[]; skipped: string[] }, url: string, password: string | null, progress: (done: number, total: number) => void,
): Promise<CopyReport> {
  const c = new pg.Client({ connectionString: url, password: password ?? undefined, application_name: 'mdserver store copy' });
  await c.connect();
  try {
    await migratePg(c, url);
    await c.query('BEGIN');
    const version = Number((await c.query<{ counter: string }>('UPDATE cluster SET counter = counter + 1 RETURNING counter')).rows[0]?.counter);
    const stored = (await c.query<PgRow>('SELECT * FROM instances')).rows;
    const p = plan(source.rows, stored);
    const report: CopyReport = { total: source.rows.length, copied: 0, present: p.present, conflicts: p.conflicts, skipped: source.skipped };
    if (p.conflicts.length > 0 || p.add.length === 0) {
      await c.query('ROLLBACK');
      return report;
    }
    for (const r of p.add) {
      await insertRow(c, r, version);
      if (++report.copied % 1000 === 0) progress(report.copied, p.add.length);
    }
    await c.query('SELECT pg_notify($1, $2)', [CHANNEL, String(version)]);
    await c.query('COMMIT');
    progress(report.copied, p.add.length);
    return report;
  } finally {
    await c.end().catch(() => undefined);
  }
}
