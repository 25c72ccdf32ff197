// Opens the instance store: PostgreSQL when `[store] url` names one, otherwise the SQLite file
// named by `[mdserver] db_file`, importing an md_server JSON database into SQLite beside it the
// first time one is found. The JSON file is never modified.

import fs from 'node:fs';
import path from 'node:path';
import { MdsError } from '../errors.js';
import { moduleLogger } from '../log.js';
import { convertJsonDb } from './jsonDb.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './store.js';

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

/** What chooses and opens the store: the `[mdserver] db_file` and `[store]` settings. */
export interface StoreSettings {
  readonly dbFile: string;
  readonly url: string | null;
  readonly password: string | null;
  readonly hostName: string;
}

/** PostgreSQL when a URL is set (rejects when it cannot be reached now), the SQLite file otherwise. */
export async function openConfiguredStore(s: StoreSettings): Promise<Store> {
  if (s.url === null) return openStore(s.dbFile);
  // Loaded only when used: a single host never pays for the PostgreSQL client at start-up.
  const { PgStore } = await import('./postgres.js');
  return PgStore.open({ url: s.url, password: s.password, host: s.hostName });
}
