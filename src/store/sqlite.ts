// The instance store in one SQLite file: opened once, prepared statements, migrations by schema
// version, one transaction per commit. Nothing outside this module sees SQL.

import Database from 'better-sqlite3';
import { MdsError } from '../errors.js';
import { safeHostName } from '../names.js';
import type { Allocate, HostEntry, Instance, NewInstance, RegisterOutcome, RegisterResult, Registration, Store } from './store.js';

interface Row {
  name: string;
  uuid: string;
  mac: string;
  ipv4: string | null;
  ipv6: string | null;
  location: string;
  metadata: string;
  arch: string | null;
  nwfilter: string | null;
  first_seen: number;
  last_update: number;
}

type HostRow = Pick<Row, 'name' | 'uuid' | 'mac' | 'ipv4' | 'ipv6'>;

const SCHEMA_VERSION = 2;

const MIGRATIONS: Record<number, string> = {
  1: `
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE instances (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      uuid TEXT NOT NULL UNIQUE,
      mac TEXT NOT NULL UNIQUE,
      ipv4 TEXT UNIQUE,
      ipv6 TEXT UNIQUE,
      location TEXT NOT NULL DEFAULT '',
      metadata TEXT NOT NULL DEFAULT '{}',
      arch TEXT,
      first_seen INTEGER NOT NULL,
      last_update INTEGER NOT NULL
    );
    CREATE TABLE locations (
      name TEXT PRIMARY KEY,
      hostname TEXT NOT NULL,
      version TEXT NOT NULL,
      first_seen INTEGER NOT NULL,
      last_seen INTEGER NOT NULL
    );
  `,
  // The nwfilter of the metadata interface (tenant isolation): null for records made before it.
  2: `ALTER TABLE instances ADD COLUMN nwfilter TEXT;`,
};

function toInstance(r: Row): Instance {
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
    firstSeen: r.first_seen,
    lastUpdate: r.last_update,
  };
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** `fn`'s result as a settled promise: SQLite's writes finish before they return. */
function settled<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(asError(e));
  }
}

function prepare(db: Database.Database) {
  return {
    byIPv4: db.prepare<[string], Row>('SELECT * FROM instances WHERE ipv4 = ?'),
    byName: db.prepare<[string], Row>('SELECT * FROM instances WHERE name = ?'),
    byUuid: db.prepare<[string], Row>('SELECT * FROM instances WHERE uuid = ?'),
    byMac: db.prepare<[string], Row>('SELECT * FROM instances WHERE mac = ?'),
    ipv4Used: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM instances WHERE ipv4 = ?'),
    all: db.prepare<[], Row>('SELECT * FROM instances ORDER BY name'),
    hosts: db.prepare<[], HostRow>('SELECT name, uuid, mac, ipv4, ipv6 FROM instances ORDER BY name'),
    count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM instances'),
    insert: db.prepare(
      `INSERT INTO instances (name, uuid, mac, ipv4, ipv6, location, metadata, arch, nwfilter, first_seen, last_update)
       VALUES (@name, @uuid, @mac, @ipv4, @ipv6, @location, @metadata, @arch, @nwfilter, @firstSeen, @lastUpdate)`,
    ),
    update: db.prepare(
      `UPDATE instances SET name = @name, uuid = @uuid, mac = @mac, ipv4 = @ipv4, location = @location,
       metadata = @metadata, arch = @arch, nwfilter = @nwfilter, last_update = @lastUpdate WHERE uuid = @oldUuid`,
    ),
    deleteByName: db.prepare<[string]>('DELETE FROM instances WHERE name = ?'),
    getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
    upsertLocation: db.prepare(
      `INSERT INTO locations (name, hostname, version, first_seen, last_seen) VALUES (@name, @hostname, @version, @now, @now)
       ON CONFLICT(name) DO UPDATE SET hostname = excluded.hostname, version = excluded.version, last_seen = excluded.last_seen`,
    ),
  };
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly q;
  private changes = 0;

  constructor(readonly file: string) {
    this.db = new Database(file);
    // WAL lets readers proceed during a write; synchronous=FULL makes a 2xx upload survive a power
    // cut, not just a crash of this process.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    try {
      this.migrate();
    } catch (e) {
      this.db.close();
      throw e;
    }
    this.q = prepare(this.db);
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > SCHEMA_VERSION) {
      throw new MdsError('DB_FORMAT', `${this.file} has schema version ${current}; this mdserver knows up to ${SCHEMA_VERSION}`);
    }
    for (let v = current + 1; v <= SCHEMA_VERSION; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v] as string);
        this.db.pragma(`user_version = ${v}`);
      })();
    }
  }

  get generation(): number {
    return this.changes;
  }

  byIPv4(ip: string): Instance | undefined {
    const r = this.q.byIPv4.get(ip);
    return r ? toInstance(r) : undefined;
  }

  byName(name: string): Instance | undefined {
    const r = this.q.byName.get(name);
    return r ? toInstance(r) : undefined;
  }

  all(): Instance[] {
    return this.q.all.all().map(toInstance);
  }

  /**
   * Reads only the columns the host files need: building full records (metadata JSON and all)
   * for ten thousand instances several times a second was most of the garbage an upload storm
   * made.
   */
  hostEntries(): HostEntry[] {
    return this.q.hosts.all().map((r) => ({ hostName: safeHostName(r.name, r.uuid), mac: r.mac, ipv4: r.ipv4, ipv6: r.ipv6 }));
  }

  count(): number {
    return this.q.count.get()?.n ?? 0;
  }

  getMeta(key: string): string | undefined {
    return this.q.getMeta.get(key)?.value;
  }

  setMeta(key: string, value: string): void {
    this.q.setMeta.run(key, value);
  }

  touchLocation(name: string, hostname: string, version: string): void {
    this.q.upsertLocation.run({ name, hostname, version, now: Date.now() });
  }

  /**
   * One transaction for the group, so one fsync; each registration in a nested transaction (a
   * savepoint), so that a conflict rolls back only its own changes.
   */
  registerAll(group: readonly Registration[], allocate: Allocate): Promise<RegisterOutcome[]> {
    return settled(() =>
      this.db.transaction(() =>
        group.map((reg): RegisterOutcome => {
          try {
            return this.register(reg, allocate);
          } catch (e) {
            return asError(e);
          }
        }),
      )(),
    );
  }

  private register(reg: Registration, allocate: Allocate): RegisterResult {
    const result = this.db.transaction((): RegisterResult => {
      const existing = this.q.byUuid.get(reg.uuid) ?? this.q.byName.get(reg.name);
      const macOwner = this.q.byMac.get(reg.mac);
      if (macOwner && (!existing || macOwner.uuid !== existing.uuid)) {
        throw new MdsError('CONFLICT', `MAC ${reg.mac} of domain ${reg.name} (${reg.uuid}) already belongs to domain ${macOwner.name} (${macOwner.uuid})`);
      }
      const nameOwner = existing && existing.name !== reg.name ? this.q.byName.get(reg.name) : undefined;
      if (nameOwner) {
        throw new MdsError('CONFLICT', `name ${reg.name} of domain ${reg.uuid} already belongs to domain ${nameOwner.uuid}`);
      }
      const ipv4 = existing?.ipv4 ?? allocate((ip) => this.q.ipv4Used.get(ip) !== undefined);
      if (ipv4 === null) throw new MdsError('POOL_EXHAUSTED', `no free address left for domain ${reg.name}`);
      return existing ? this.update(existing, reg, ipv4) : this.insert(reg, ipv4);
    })();
    if (result.changed) this.changes++;
    return result;
  }

  private update(existing: Row, reg: Registration, ipv4: string): RegisterResult {
    const now = Date.now();
    const metadata = JSON.stringify(reg.metadata);
    const nwfilter = reg.nwfilter ?? null;
    const changed = existing.name !== reg.name || existing.uuid !== reg.uuid || existing.mac !== reg.mac ||
      existing.ipv4 !== ipv4 || existing.metadata !== metadata || existing.arch !== reg.arch || existing.location !== reg.location ||
      existing.nwfilter !== nwfilter;
    const row: Row = {
      ...existing, name: reg.name, uuid: reg.uuid, mac: reg.mac, ipv4, location: reg.location, metadata, arch: reg.arch, nwfilter, last_update: now,
    };
    this.q.update.run({
      name: row.name, uuid: row.uuid, mac: row.mac, ipv4: row.ipv4, location: row.location, metadata, arch: row.arch, nwfilter,
      lastUpdate: now, oldUuid: existing.uuid,
    });
    return { instance: toInstance(row), created: false, changed };
  }

  private insert(reg: Registration, ipv4: string): RegisterResult {
    const now = Date.now();
    const row: Row = {
      name: reg.name, uuid: reg.uuid, mac: reg.mac, ipv4, ipv6: null, location: reg.location,
      metadata: JSON.stringify(reg.metadata), arch: reg.arch, nwfilter: reg.nwfilter ?? null, first_seen: now, last_update: now,
    };
    this.q.insert.run({
      name: row.name, uuid: row.uuid, mac: row.mac, ipv4, ipv6: null, location: row.location, metadata: row.metadata,
      arch: row.arch, nwfilter: row.nwfilter, firstSeen: now, lastUpdate: now,
    });
    return { instance: toInstance(row), created: true, changed: true };
  }

  /** Inserts records read from elsewhere (the md_server JSON import) as they are. */
  insertMany(rows: readonly NewInstance[]): void {
    this.db.transaction(() => {
      for (const r of rows) this.q.insert.run({ ...r, metadata: JSON.stringify(r.metadata) });
    })();
    this.changes++;
  }

  delete(name: string): Promise<Instance | undefined> {
    return settled(() => {
      const r = this.q.byName.get(name);
      if (!r) return undefined;
      this.q.deleteByName.run(name);
      this.changes++;
      return toInstance(r);
    });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
