// The instance store in PostgreSQL, shared by every host of a cluster. Reads are answered from an
// in-memory copy of every instance (instanceIndex.ts) that the feed keeps current (pgFeed.ts), so
// a metadata request never waits on the network. Each write is one transaction that first takes
// the change counter's row lock: that orders the writes of all hosts, stamps what they change, and
// makes the transaction see every earlier commit before it allocates an address. The database's
// unique constraints are the last word on addresses, MACs, uuids, names and host names.

import pg from 'pg';
import { describe, MdsError } from '../errors.js';
import { moduleLogger } from '../log.js';
import { uuidTaken, hostNameTaken } from './conflicts.js';
import { InstanceIndex } from './instanceIndex.js';
import { CHANNEL, PgFeed } from './pgFeed.js';
import { instancesFeed, registerOne, toInstance, type LocalChange, type PgRow } from './pgInstances.js';
import { migratePg } from './pgSchema.js';
import { hostKey } from './schema.js';
import type { Allocate, Instance, HostRecord, Reachability, Rekeyed, RegisterOutcome, Registration, Store } from './store.js';

const log = moduleLogger('store');

export interface PgOptions {
  /** `[store] url`: a postgresql:// URL, with `?host=/dir` for a unix socket. */
  readonly url: string;
  readonly password: string | null;
  /** `[store] host_name`: the name this host writes into the records it registers. */
  readonly host: string;
}

/** A failure to reach the database, as opposed to a refusal by it. */
function unreachable(e: unknown): boolean {
  if (e instanceof MdsError) return false;
  if (e instanceof pg.DatabaseError) return /^(08|57P)/.test(e.code ?? '');
  return true;
}

export function unavailable(e: unknown): MdsError {
  return new MdsError('STORE_UNAVAILABLE', `the instance store (PostgreSQL) is unreachable, nothing was stored: ${describe(e)}`, { cause: e });
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** A write's work inside its transaction: its result, and the changes to apply once committed. */
type Work<T> = (c: pg.PoolClient, version: number) => Promise<{ result: T; changes: LocalChange[] }>;

export class PgStore implements Store {
  private readonly index = new InstanceIndex();
  private readonly meta = new Map<string, string>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly feed: PgFeed;
  private readonly listeners: (() => void)[] = [];
  /** The copy's generation when the listeners were last told. */
  private told = 0;

  private constructor(private readonly pool: pg.Pool, private readonly options: PgOptions) {
    // Named, so that an operator sees in pg_stat_activity which host holds which connection.
    const connection = { connectionString: options.url, password: options.password ?? undefined, application_name: `mdserver ${options.host} feed` };
    this.feed = new PgFeed(() => new pg.Client(connection), [instancesFeed(this.index)], log, () => this.tell());
  }

  /** Connects, creates or migrates the schema, and loads every instance; rejects if the database cannot be reached. */
  static async open(options: PgOptions): Promise<PgStore> {
    const pool = new pg.Pool({
      connectionString: options.url, password: options.password ?? undefined, max: 4, application_name: `mdserver ${options.host}`,
      connectionTimeoutMillis: 3000, query_timeout: 15_000, idleTimeoutMillis: 10_000,
    });
    // An idle connection the server dropped: the next write gets a new one, or fails and says so.
    pool.on('error', (e) => log.debug('an idle store connection failed', { error: describe(e) }));
    const store = new PgStore(pool, options);
    try {
      const c = await pool.connect();
      try {
        await migratePg(c, 'the PostgreSQL store');
        for (const r of (await c.query<{ key: string; value: string }>('SELECT key, value FROM meta')).rows) store.meta.set(r.key, r.value);
      } finally {
        c.release();
      }
      await store.feed.start();
    } catch (e) {
      await store.close();
      throw e;
    }
    log.info('using the PostgreSQL instance store', { host: options.host, instances: store.count(), counter: store.feed.seen });
    return store;
  }

  onExternalChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Tells the listeners if the copy changed since they were last told. */
  private tell(): void {
    this.index.rows.prune(this.feed.seen);
    if (this.index.generation === this.told) return;
    this.told = this.index.generation;
    for (const l of this.listeners) l();
  }

  get generation(): number {
    return this.index.generation;
  }

  /** Whether the database is reachable now, and since when (for /health and `mdserver status`). */
  reachability(): Reachability {
    const s = this.feed.state();
    return { ok: s.connected, since: s.since, error: s.error };
  }

  byIPv4(ip: string): Instance | undefined {
    return this.index.byIPv4(ip);
  }

  byName(name: string): Instance | undefined {
    return this.index.byName(name);
  }

  byUuid(uuid: string): Instance | undefined {
    return this.index.byUuid(uuid);
  }

  byMac(mac: string): Instance | undefined {
    return this.index.byMac(mac);
  }

  all(): Instance[] {
    return this.index.all();
  }

  count(): number {
    return this.index.count();
  }

  hostEntries(): HostRecord[] {
    return this.index.hostEntries();
  }

  getMeta(key: string): string | undefined {
    return this.meta.get(key);
  }

  setMeta(key: string, value: string): void {
    this.meta.set(key, value);
    this.inBackground('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }

  touchLocation(name: string, hostname: string, version: string): void {
    this.inBackground(
      `INSERT INTO locations (name, hostname, version, first_seen, last_seen) VALUES ($1, $2, $3, $4, $4)
       ON CONFLICT (name) DO UPDATE SET hostname = excluded.hostname, version = excluded.version, last_seen = excluded.last_seen`,
      [name, hostname, version, Date.now()]);
  }

  /** Bookkeeping nobody waits for: written when it can be, a failure only logged. */
  private inBackground(sql: string, params: unknown[]): void {
    const p = this.pool.query(sql, params).catch((e: unknown) => log.warn('a bookkeeping write to the store failed', { error: describe(e) }));
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  /** Resolves once the bookkeeping writes issued so far are done. */
  async settled(): Promise<void> {
    await Promise.all([...this.background]);
  }

  /** Resolves once this host has applied every change committed anywhere up to now. */
  async caughtUp(): Promise<void> {
    const counter = Number((await this.pool.query<{ counter: string }>('SELECT counter FROM cluster')).rows[0]?.counter ?? 0);
    this.feed.schedule();
    await this.feed.reached(counter);
  }

  /**
   * Runs `work` in one transaction that holds the change counter's row lock, then applies its
   * changes here. Every failure to reach the database becomes STORE_UNAVAILABLE: the transaction
   * did not commit, or (if the connection broke during COMMIT) a retry finds what it stored.
   */
  private async write<T>(work: Work<T>): Promise<T> {
    if (!this.feed.state().connected) throw unavailable(new Error(this.feed.state().error ?? 'not connected'));
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (e) {
      // The feed's own connection says whether the store is down (and reconnects); this write just fails.
      throw unavailable(e);
    }
    let broken = false;
    try {
      await c.query('BEGIN');
      const version = Number((await c.query<{ counter: string }>('UPDATE cluster SET counter = counter + 1 RETURNING counter')).rows[0]?.counter);
      // Holding the lock, this sees every earlier commit: the copy is brought up to date with it.
      await instancesFeed(this.index).catchUp(c, this.feed.seen);
      const done = await work(c, version);
      await c.query('SELECT pg_notify($1, $2)', [CHANNEL, String(version)]);
      await c.query('COMMIT');
      this.apply(version, done.changes);
      return done.result;
    } catch (e) {
      broken = unreachable(e);
      if (!broken) await c.query('ROLLBACK').catch(() => undefined);
      if (broken) throw unavailable(e);
      throw e;
    } finally {
      c.release(broken);
    }
  }

  private apply(version: number, changes: readonly LocalChange[]): void {
    if (version <= this.feed.seen) return;
    for (const ch of changes) {
      if ('put' in ch) this.index.rows.put(ch.put.uuid, version, ch.put);
      else this.index.rows.remove(ch.remove, version);
    }
  }

  registerAll(group: readonly Registration[], allocate: Allocate): Promise<RegisterOutcome[]> {
    return this.write(async (c, version) => {
      const given = new Set<string>();
      const isUsed = (ip: string): boolean => given.has(ip) || this.index.byIPv4(ip) !== undefined;
      const ctx = { version, allocate, isUsed };
      const outcomes: RegisterOutcome[] = [];
      const changes: LocalChange[] = [];
      for (const reg of group) {
        await c.query('SAVEPOINT reg');
        try {
          const r = await registerOne(c, reg, ctx);
          await c.query('RELEASE SAVEPOINT reg');
          if (r.instance.ipv4) given.add(r.instance.ipv4);
          if (r.changed) changes.push({ put: r.instance });
          outcomes.push(r);
        } catch (e) {
          if (unreachable(e)) throw e;
          await c.query('ROLLBACK TO SAVEPOINT reg');
          outcomes.push(asError(e));
        }
      }
      return { result: outcomes, changes };
    });
  }

  rekey(name: string, uuid: string): Promise<Rekeyed | undefined> {
    return this.write(async (c, version) => {
      const rows = (await c.query<PgRow>('SELECT * FROM instances WHERE name = $1 OR uuid = $2 OR host_key = $3 FOR UPDATE', [name, uuid, hostKey(name, uuid)])).rows;
      const row = rows.find((r) => r.name === name);
      if (!row) return { result: undefined, changes: [] };
      if (row.uuid === uuid) return { result: { instance: toInstance(row), previousUuid: uuid }, changes: [] };
      const other = rows.find((r) => r.uuid === uuid);
      if (other) throw uuidTaken(uuid, other);
      const holder = hostKey(row.name, row.uuid) === hostKey(name, uuid) ? undefined : rows.find((r) => r.uuid !== row.uuid && hostKey(r.name, r.uuid) === hostKey(name, uuid));
      if (holder) throw hostNameTaken({ name, uuid }, holder);
      const now = Date.now();
      await c.query('UPDATE instances SET uuid = $1, host_key = $2, last_update = $3, version = $4 WHERE uuid = $5', [uuid, hostKey(name, uuid), now, version, row.uuid]);
      await this.tombstone(c, row.uuid, version);
      const instance = toInstance({ ...row, uuid, last_update: now });
      return { result: { instance, previousUuid: row.uuid }, changes: [{ remove: row.uuid }, { put: instance }] };
    });
  }

  delete(name: string): Promise<Instance | undefined> {
    return this.write(async (c, version) => {
      const row = (await c.query<PgRow>('DELETE FROM instances WHERE name = $1 RETURNING *', [name])).rows[0];
      if (!row) return { result: undefined, changes: [] };
      await this.tombstone(c, row.uuid, version);
      return { result: toInstance(row), changes: [{ remove: row.uuid }] };
    });
  }

  private async tombstone(c: pg.ClientBase, uuid: string, version: number): Promise<void> {
    await c.query('INSERT INTO tombstones (uuid, version) VALUES ($1, $2) ON CONFLICT (uuid) DO UPDATE SET version = excluded.version', [uuid, version]);
  }

  close(): Promise<void> {
    const done = (async () => {
      await this.settled();
      await this.feed.close();
      await this.pool.end().catch(() => undefined);
    })();
    return done;
  }
}
