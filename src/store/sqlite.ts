// The instance store in one SQLite file: opened once, prepared statements, migrations by schema
// version, one transaction per commit. Nothing outside this module sees SQL.

import Database from 'better-sqlite3';
import { MdsError } from '../errors.js';
import { safeHostName } from '../names.js';
import { hostNameTaken, macTaken, nameTaken, renameTaken, uuidElsewhere, uuidTaken } from './conflicts.js';
import { rowToInstance, type InstanceRow } from './rows.js';
import { hostKey, migrate } from './schema.js';
import { SqliteBoots } from './sqliteBoots.js';
import { SqlitePasswords } from './sqlitePasswords.js';
import type { Allocate, BootEvent, BootRecord, HostRecord, Instance, NewInstance, Rekeyed, RegisterOutcome, RegisterResult, Registration, Store } from './store.js';

interface Row extends InstanceRow {
  first_seen: number;
  last_update: number;
}

type HostRow = Pick<Row, 'name' | 'uuid' | 'mac' | 'ipv4' | 'ipv6' | 'first_seen' | 'host'>;

const toInstance = (r: Row): Instance => rowToInstance(r);

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
    hosts: db.prepare<[], HostRow>('SELECT name, uuid, mac, ipv4, ipv6, first_seen, host FROM instances ORDER BY name'),
    byHostKey: db.prepare<[string, string], Pick<Row, 'name' | 'uuid'>>('SELECT name, uuid FROM instances WHERE host_key = ? AND uuid != ? LIMIT 1'),
    count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM instances'),
    insert: db.prepare(
      `INSERT INTO instances (name, uuid, mac, ipv4, ipv6, location, metadata, arch, nwfilter, host, first_seen, last_update, host_key)
       VALUES (@name, @uuid, @mac, @ipv4, @ipv6, @location, @metadata, @arch, @nwfilter, @host, @firstSeen, @lastUpdate, @hostKey)`,
    ),
    rekey: db.prepare<[string, string, number, string]>('UPDATE instances SET uuid = ?, host_key = ?, last_update = ? WHERE uuid = ?'),
    update: db.prepare(
      `UPDATE instances SET name = @name, uuid = @uuid, mac = @mac, ipv4 = @ipv4, location = @location,
       metadata = @metadata, arch = @arch, nwfilter = @nwfilter, host = @host, last_update = @lastUpdate, host_key = @hostKey WHERE uuid = @oldUuid`,
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
  private readonly boots: SqliteBoots;
  private readonly passwords: SqlitePasswords;
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
      migrate(this.db, file);
    } catch (e) {
      this.db.close();
      throw e;
    }
    this.q = prepare(this.db);
    this.boots = new SqliteBoots(this.db);
    this.passwords = new SqlitePasswords(this.db);
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

  byUuid(uuid: string): Instance | undefined {
    const r = this.q.byUuid.get(uuid);
    return r ? toInstance(r) : undefined;
  }

  byMac(mac: string): Instance | undefined {
    const r = this.q.byMac.get(mac);
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
  hostEntries(): readonly HostRecord[] {
    return this.q.hosts.all().map((r) => ({
      hostName: safeHostName(r.name, r.uuid), mac: r.mac, ipv4: r.ipv4, ipv6: r.ipv6, name: r.name, uuid: r.uuid, firstSeen: r.first_seen, host: r.host,
    }));
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
      const existing = this.q.byUuid.get(reg.uuid);
      const sameName = existing ? undefined : this.q.byName.get(reg.name);
      if (sameName) throw nameTaken(reg, sameName);
      const macOwner = this.q.byMac.get(reg.mac);
      if (macOwner && (!existing || macOwner.uuid !== existing.uuid)) {
        throw macTaken(reg, macOwner);
      }
      const elsewhere = existing && uuidElsewhere(reg, existing);
      if (elsewhere) throw elsewhere;
      const nameOwner = existing && existing.name !== reg.name ? this.q.byName.get(reg.name) : undefined;
      if (nameOwner) {
        throw renameTaken(reg, nameOwner);
      }
      this.checkHostName(reg, existing);
      const ipv4 = existing?.ipv4 ?? allocate((ip) => this.q.ipv4Used.get(ip) !== undefined);
      if (ipv4 === null) throw new MdsError('POOL_EXHAUSTED', `no free address left for domain ${reg.name}`);
      return existing ? this.update(existing, reg, ipv4) : this.insert(reg, ipv4);
    })();
    if (result.changed) this.changes++;
    return result;
  }

  /**
   * A new record, or one whose host name changes, may not take a host name another instance
   * answers to in DNS. A record keeps the host name it has: a database from before this rule may
   * hold two that collide, and re-registering them must go on working.
   */
  private checkHostName(reg: Pick<Registration, 'name' | 'uuid'>, existing: Row | undefined): void {
    const key = hostKey(reg.name, reg.uuid);
    if (existing && hostKey(existing.name, existing.uuid) === key) return;
    const holder = this.q.byHostKey.get(key, existing?.uuid ?? reg.uuid);
    if (!holder) return;
    throw hostNameTaken(reg, { ...holder, ipv4: null });
  }

  private update(existing: Row, reg: Registration, ipv4: string): RegisterResult {
    const now = Date.now();
    const metadata = JSON.stringify(reg.metadata);
    const nwfilter = reg.nwfilter ?? null;
    const host = reg.host ?? '';
    const changed = existing.name !== reg.name || existing.uuid !== reg.uuid || existing.mac !== reg.mac ||
      existing.ipv4 !== ipv4 || existing.metadata !== metadata || existing.arch !== reg.arch || existing.location !== reg.location ||
      existing.nwfilter !== nwfilter || existing.host !== host;
    const row: Row = {
      ...existing, name: reg.name, uuid: reg.uuid, mac: reg.mac, ipv4, location: reg.location, metadata, arch: reg.arch, nwfilter, host, last_update: now,
    };
    this.q.update.run({
      name: row.name, uuid: row.uuid, mac: row.mac, ipv4: row.ipv4, location: row.location, metadata, arch: row.arch, nwfilter, host,
      lastUpdate: now, oldUuid: existing.uuid, hostKey: hostKey(row.name, row.uuid),
    });
    return { instance: toInstance(row), created: false, changed };
  }

  private insert(reg: Registration, ipv4: string): RegisterResult {
    const now = Date.now();
    const row: Row = {
      name: reg.name, uuid: reg.uuid, mac: reg.mac, ipv4, ipv6: null, location: reg.location,
      metadata: JSON.stringify(reg.metadata), arch: reg.arch, nwfilter: reg.nwfilter ?? null, host: reg.host ?? '', first_seen: now, last_update: now,
    };
    this.q.insert.run({
      name: row.name, uuid: row.uuid, mac: row.mac, ipv4, ipv6: null, location: row.location, metadata: row.metadata,
      arch: row.arch, nwfilter: row.nwfilter, host: row.host, firstSeen: now, lastUpdate: now, hostKey: hostKey(row.name, row.uuid),
    });
    return { instance: toInstance(row), created: true, changed: true };
  }

  /**
   * Inserts records read from elsewhere (the md_server JSON import) as they are, host names that
   * collide included: md_server had no such rule, and its VMs keep their addresses.
   */
  insertMany(rows: readonly NewInstance[]): void {
    this.db.transaction(() => {
      for (const r of rows) this.q.insert.run({ ...r, host: r.host ?? '', metadata: JSON.stringify(r.metadata), hostKey: hostKey(r.name, r.uuid) });
    })();
    this.changes++;
  }

  rekey(name: string, uuid: string): Promise<Rekeyed | undefined> {
    return settled(() =>
      this.db.transaction((): Rekeyed | undefined => {
        const row = this.q.byName.get(name);
        if (!row) return undefined;
        if (row.uuid === uuid) return { instance: toInstance(row), previousUuid: uuid };
        const other = this.q.byUuid.get(uuid);
        if (other) throw uuidTaken(uuid, other);
        // Only a name that maps to nothing takes its host name from the uuid; it must stay unique.
        this.checkHostName({ name, uuid }, row);
        const now = Date.now();
        this.q.rekey.run(uuid, hostKey(name, uuid), now, row.uuid);
        this.changes++;
        return { instance: toInstance({ ...row, uuid, last_update: now }), previousUuid: row.uuid };
      })(),
    );
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

  bootRecord(uuid: string): BootRecord | undefined {
    return this.boots.bootRecord(uuid);
  }

  beginBoot(uuid: string, at: number, firstRequest: number | null): void {
    this.boots.beginBoot(uuid, at, firstRequest);
  }

  markFirstRequest(uuid: string, at: number): void {
    this.boots.markFirstRequest(uuid, at);
  }

  appendBootEvents(batch: ReadonlyMap<string, readonly BootEvent[]>, keep: number): Promise<void> {
    return settled(() => this.boots.appendBootEvents(batch, keep));
  }

  setPassword(name: string, password: string, expires: number): Promise<boolean> {
    return settled(() => this.passwords.set(name, password, expires));
  }

  password(name: string, now: number): string | undefined {
    return this.passwords.get(name, now);
  }

  deletePassword(name: string): Promise<boolean> {
    return settled(() => this.passwords.delete(name));
  }

  purgePasswords(now: number): Promise<number> {
    return settled(() => this.passwords.purge(now));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
