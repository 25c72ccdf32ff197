// The instance database: one SQLite file opened once, prepared statements, one transaction per
// change. Nothing outside this module sees SQL.

import Database from 'better-sqlite3';
import { MdsError } from '../errors.js';
import { safeHostName } from '../names.js';

export interface Instance {
  readonly name: string;
  /** `name` made safe for DNS and dnsmasq files (see names.ts). */
  readonly hostName: string;
  readonly uuid: string;
  readonly mac: string;
  readonly ipv4: string | null;
  readonly ipv6: string | null;
  readonly location: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly arch: string | null;
  /** Milliseconds since the epoch. */
  readonly firstSeen: number;
  readonly lastUpdate: number;
}

/** What registering a domain states about it; the store keeps its address and first sighting. */
export interface Registration {
  readonly name: string;
  readonly uuid: string;
  /** MAC of the domain's interface on the metadata network. */
  readonly mac: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly arch: string | null;
  /** The `[service] location` of the host that registered it. */
  readonly location: string;
}

export interface RegisterResult {
  instance: Instance;
  created: boolean;
  /** False when the upload repeated what was already stored. */
  changed: boolean;
}

/** Each registration of a group ends as its stored result or as the error that refused it. */
export type RegisterOutcome = RegisterResult | Error;

/**
 * Chooses the address of a new record, or returns null when none is free. `isUsed` says whether
 * an address belongs to a stored instance (or to one registered earlier in the same group).
 */
export type Allocate = (isUsed: (ipv4: string) => boolean) => string | null;

interface Row {
  name: string;
  uuid: string;
  mac: string;
  ipv4: string | null;
  ipv6: string | null;
  location: string;
  metadata: string;
  arch: string | null;
  first_seen: number;
  last_update: number;
}

/** One line's worth of the dnsmasq host files: the part of an instance they are written from. */
export interface HostEntry {
  readonly hostName: string;
  readonly mac: string;
  readonly ipv4: string | null;
  readonly ipv6: string | null;
}

type HostRow = Pick<Row, 'name' | 'uuid' | 'mac' | 'ipv4' | 'ipv6'>;

const SCHEMA_VERSION = 1;

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
    firstSeen: r.first_seen,
    lastUpdate: r.last_update,
  };
}

/** A record as it is inserted: everything but the derived host name. */
export type NewInstance = Omit<Instance, 'hostName'>;

export class Store {
  private readonly db: Database.Database;
  private readonly q;
  /** Bumped on every change, so that caches of derived data know when to drop. */
  generation = 0;

  constructor(readonly file: string) {
    this.db = new Database(file);
    // WAL lets readers proceed during a write; synchronous=FULL makes a 2xx upload survive a power
    // cut, not just a crash of this process.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    const db = this.db;
    this.q = {
      byIPv4: db.prepare<[string], Row>('SELECT * FROM instances WHERE ipv4 = ?'),
      byName: db.prepare<[string], Row>('SELECT * FROM instances WHERE name = ?'),
      byUuid: db.prepare<[string], Row>('SELECT * FROM instances WHERE uuid = ?'),
      byMac: db.prepare<[string], Row>('SELECT * FROM instances WHERE mac = ?'),
      ipv4Used: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM instances WHERE ipv4 = ?'),
      all: db.prepare<[], Row>('SELECT * FROM instances ORDER BY name'),
      hosts: db.prepare<[], HostRow>('SELECT name, uuid, mac, ipv4, ipv6 FROM instances ORDER BY name'),
      count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM instances'),
      insert: db.prepare(
        `INSERT INTO instances (name, uuid, mac, ipv4, ipv6, location, metadata, arch, first_seen, last_update)
         VALUES (@name, @uuid, @mac, @ipv4, @ipv6, @location, @metadata, @arch, @firstSeen, @lastUpdate)`,
      ),
      update: db.prepare(
        `UPDATE instances SET name = @name, uuid = @uuid, mac = @mac, ipv4 = @ipv4, location = @location,
         metadata = @metadata, arch = @arch, last_update = @lastUpdate WHERE uuid = @oldUuid`,
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
   * What the dnsmasq host files need of every instance. Rewritten after each burst of uploads, so
   * it reads only these columns: building full records (metadata JSON and all) for ten thousand
   * instances several times a second was most of the garbage an upload storm made.
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
   * Records an uploaded domain. A known uuid (else a known name) keeps its record and address; a
   * MAC or name that belongs to another domain is a conflict. `allocate` is asked for an address
   * only when the record has none, inside the same transaction, so nothing is half-stored.
   */
  register(info: Registration, allocate: Allocate): RegisterResult {
    const result = this.db.transaction((): RegisterResult => {
      const now = Date.now();
      const existing = this.q.byUuid.get(info.uuid) ?? this.q.byName.get(info.name);
      const macOwner = this.q.byMac.get(info.mac);
      if (macOwner && (!existing || macOwner.uuid !== existing.uuid)) {
        throw new MdsError('CONFLICT', `MAC ${info.mac} of domain ${info.name} (${info.uuid}) already belongs to domain ${macOwner.name} (${macOwner.uuid})`);
      }
      const nameOwner = existing && existing.name !== info.name ? this.q.byName.get(info.name) : undefined;
      if (nameOwner) {
        throw new MdsError('CONFLICT', `name ${info.name} of domain ${info.uuid} already belongs to domain ${nameOwner.uuid}`);
      }
      const { location } = info;
      const metadata = JSON.stringify(info.metadata);
      const isUsed = (ip: string): boolean => this.q.ipv4Used.get(ip) !== undefined;
      if (existing) {
        let ipv4 = existing.ipv4;
        if (ipv4 === null) {
          ipv4 = allocate(isUsed);
          if (ipv4 === null) throw new MdsError('POOL_EXHAUSTED', `no free address left for domain ${info.name}`);
        }
        const changed = existing.name !== info.name || existing.uuid !== info.uuid || existing.mac !== info.mac ||
          existing.ipv4 !== ipv4 || existing.metadata !== metadata || existing.arch !== info.arch || existing.location !== location;
        const row: Row = { ...existing, name: info.name, uuid: info.uuid, mac: info.mac, ipv4, location, metadata, arch: info.arch, last_update: now };
        this.q.update.run({
          name: row.name, uuid: row.uuid, mac: row.mac, ipv4: row.ipv4, location, metadata, arch: row.arch,
          lastUpdate: now, oldUuid: existing.uuid,
        });
        return { instance: toInstance(row), created: false, changed };
      }
      const ipv4 = allocate(isUsed);
      if (ipv4 === null) throw new MdsError('POOL_EXHAUSTED', `no free address left for domain ${info.name}`);
      const row: NewInstance = {
        name: info.name, uuid: info.uuid, mac: info.mac, ipv4, ipv6: null, location,
        metadata: info.metadata, arch: info.arch, firstSeen: now, lastUpdate: now,
      };
      this.q.insert.run({ ...row, metadata });
      return {
        instance: toInstance({ ...row, metadata, first_seen: now, last_update: now }),
        created: true,
        changed: true,
      };
    })();
    if (result.changed) this.generation++;
    return result;
  }

  /** Inserts records read from elsewhere (the md_server JSON import) as they are. */
  insertMany(rows: NewInstance[]): void {
    this.db.transaction(() => {
      for (const r of rows) this.q.insert.run({ ...r, metadata: JSON.stringify(r.metadata) });
    })();
    this.generation++;
  }

  /** Deletes by name; returns the record that was removed. */
  delete(name: string): Instance | undefined {
    const r = this.q.byName.get(name);
    if (!r) return undefined;
    this.q.deleteByName.run(name);
    this.generation++;
    return toInstance(r);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
