// The instance store in PostgreSQL, shared by every host of a cluster. Reads are answered from an
// in-memory copy of every instance (instanceIndex.ts) that the feed keeps current (pgFeed.ts), so
// a metadata request never waits on the network. Each write is one transaction that takes the
// change counter's row lock only for its last round trip (pgWrite.ts): that orders the writes of
// all hosts and stamps what they change. Addresses are chosen from the in-memory copy; the
// database's unique constraints are the last word on addresses, MACs, uuids, names and host names,
// and a registration that lost a race to another host's is tried again (pgInstances.ts). Boots
// (pgBoots.ts) and passwords (pgPasswords.ts) are replicated the same way and follow their
// instance's uuid.

import pg from 'pg';
import { describe } from '../errors.js';
import { moduleLogger } from '../log.js';
import { BootReplica } from './bootReplica.js';
import { uuidTaken, hostNameTaken } from './conflicts.js';
import { InstanceIndex } from './instanceIndex.js';
import { Background } from './pgBackground.js';
import { eachOutcome, writeBoots, type QueuedBoot } from './pgBootBatch.js';
import * as boots from './pgBoots.js';
import { PgFeed } from './pgFeed.js';
import { instancesFeed, pruneTombstones, registerGroup, tombstone, toInstance, type PgRow } from './pgInstances.js';
import * as passwords from './pgPasswords.js';
import { migratePg } from './pgSchema.js';
import { CONNECTION_CHECK, transaction, type Change, type Work } from './pgWrite.js';
import { Replica } from './replica.js';
import { hostKey } from './schema.js';
import type {
  Allocate, BootEvent, BootRecord, Instance, HostRecord, Reachability, Rekeyed, RegisterOutcome, Registration, Store,
} from './store.js';

const log = moduleLogger('store');

/**
 * How long a deletion's tombstone is kept for the catch-ups of hosts that were away: a host away
 * longer reads the whole store again when it is back, which costs it a start-up's work, once.
 */
const TOMBSTONE_AGE_MS = 7 * 24 * 3600_000;
const PRUNE_EVERY_MS = 3600_000;

export interface PgOptions {
  /** `[store] url`: a postgresql:// URL, with `?host=/dir` for a unix socket. */
  readonly url: string;
  readonly password: string | null;
  /** `[store] host_name`: the name this host writes into the records it registers. */
  readonly host: string;
}

export class PgStore implements Store {
  private readonly index = new InstanceIndex();
  private readonly boots = new BootReplica((uuid) => this.index.byUuid(uuid) !== undefined);
  private readonly passwords = new Replica<passwords.StoredPassword>();
  private readonly meta = new Map<string, string>();
  private readonly background: Background;
  private readonly feed: PgFeed;
  private readonly listeners: (() => void)[] = [];
  /** The copy's generation when the listeners were last told. */
  private told = 0;
  private pruning: NodeJS.Timeout | null = null;

  private constructor(private readonly pool: pg.Pool, private readonly options: PgOptions) {
    // Named, so that an operator sees in pg_stat_activity which host holds which connection.
    const connection = { connectionString: options.url, password: options.password ?? undefined, application_name: `mdserver ${options.host} feed` };
    const tables = [instancesFeed(this.index), boots.bootsFeed(this.boots), passwords.passwordsFeed(this.passwords)];
    this.feed = new PgFeed(() => new pg.Client(connection), tables, log, () => this.tell());
    this.background = new Background(log, () => !this.feed.state().connected);
  }

  /** Connects, creates or migrates the schema, and loads every instance; rejects if the database cannot be reached. */
  static async open(options: PgOptions): Promise<PgStore> {
    const pool = new pg.Pool({
      connectionString: options.url, password: options.password ?? undefined, max: 4, application_name: `mdserver ${options.host}`,
      connectionTimeoutMillis: 3000, query_timeout: 15_000, idleTimeoutMillis: 10_000,
    });
    // An idle connection the server dropped: the next write gets a new one, or fails and says so.
    pool.on('error', (e) => log.debug('an idle store connection failed', { error: describe(e) }));
    // Queued ahead of the connection's first statement: a write its host gave up on must not commit later.
    pool.on('connect', (c) => void c.query(CONNECTION_CHECK).catch(() => undefined));
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
    store.pruning = setInterval(() => {
      store.background.detached('pruneTombstones', () => store.pruneTombstones(Date.now() - TOMBSTONE_AGE_MS));
    }, PRUNE_EVERY_MS).unref();
    log.info('using the PostgreSQL instance store', { host: options.host, instances: store.count(), counter: store.feed.seen });
    return store;
  }

  onExternalChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  onBackgroundFault(listener: (operation: string) => void): void {
    this.background.onFault(listener);
  }

  /** Tells the listeners if the instances changed since they were last told. */
  private tell(): void {
    this.index.rows.prune(this.feed.seen);
    this.boots.prune(this.feed.seen);
    this.passwords.prune(this.feed.seen);
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

  hostEntries(): readonly HostRecord[] {
    return this.index.hostEntries();
  }

  getMeta(key: string): string | undefined {
    return this.meta.get(key);
  }

  setMeta(key: string, value: string): void {
    this.meta.set(key, value);
    this.inBackground('setMeta', 'INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }

  touchLocation(name: string, hostname: string, version: string): void {
    this.inBackground(
      'touchLocation', `INSERT INTO locations (name, hostname, version, first_seen, last_seen) VALUES ($1, $2, $3, $4, $4)
       ON CONFLICT (name) DO UPDATE SET hostname = excluded.hostname, version = excluded.version, last_seen = excluded.last_seen`,
      [name, hostname, version, Date.now()]);
  }

  /** Bookkeeping nobody waits for: written when it can be, a failure only logged and counted. */
  private inBackground(operation: string, sql: string, params: unknown[]): void {
    this.background.detached(operation, () => this.pool.query(sql, params));
  }

  /** Resolves once the bookkeeping writes issued so far are done. */
  async settled(): Promise<void> {
    await this.background.settled();
  }

  /** Resolves once this host has applied every change committed anywhere up to now. */
  async caughtUp(): Promise<void> {
    const counter = Number((await this.pool.query<{ counter: string }>('SELECT counter FROM cluster')).rows[0]?.counter ?? 0);
    this.feed.schedule();
    await this.feed.reached(counter);
  }

  /**
   * Runs `work` in one transaction (pgWrite.ts), after `after`, and applies its changes here once
   * it is committed; `committed` learns the version it was stamped with.
   */
  private async write<T>(work: Work<T>, after?: Promise<void>, committed?: (version: number) => void): Promise<T> {
    await after;
    return transaction(this.pool, this.feed, work, (version, changes) => {
      committed?.(version);
      this.apply(version, changes);
    });
  }

  private apply(version: number, changes: readonly Change[]): void {
    if (version <= this.feed.seen) return;
    for (const ch of changes) {
      if ('put' in ch) this.index.rows.put(ch.put.uuid, version, ch.put);
      else if ('boot' in ch) this.boots.apply(ch.boot, version);
      else if ('password' in ch) passwords.applyPassword(this.passwords, ch, version);
      else {
        // The instance's boot and password go with it (and come back under its new uuid after a rekey).
        this.index.rows.remove(ch.remove, version);
        this.boots.remove(ch.remove, version);
        this.passwords.remove(ch.remove, version);
      }
    }
  }

  registerAll(group: readonly Registration[], allocate: Allocate): Promise<RegisterOutcome[]> {
    return this.write(async (c, mark) => {
      const { outcomes, changes } = await registerGroup(c, group, mark, allocate, (ip) => this.index.byIPv4(ip) !== undefined, (uuid) => this.index.byUuid(uuid) !== undefined);
      return { result: outcomes, changes };
    });
  }

  /** Comes after the boot writes made before it, so that they find the record where they expect it. */
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
      await tombstone(c, row.uuid, version);
      // The foreign keys moved its boot and password: stamped, the other hosts read them under the new uuid.
      const moved = [await boots.restampBoot(c, uuid, version), await passwords.restampPassword(c, uuid, version)];
      const instance = toInstance({ ...row, uuid, last_update: now });
      const changes: Change[] = [{ remove: row.uuid }, { put: instance }];
      for (const m of moved) if (m) changes.push(m);
      return { result: { instance, previousUuid: row.uuid }, changes };
    }, this.background.idle());
  }

  /** Removes the instance, its boot and its password (the foreign keys cascade); after the boot writes made before it. */
  delete(name: string): Promise<Instance | undefined> {
    return this.write(async (c, version) => {
      const row = (await c.query<PgRow>('DELETE FROM instances WHERE name = $1 RETURNING *', [name])).rows[0];
      if (!row) return { result: undefined, changes: [] };
      await tombstone(c, row.uuid, version);
      return { result: toInstance(row), changes: [{ remove: row.uuid }] };
    }, this.background.idle());
  }

  /**
   * Removes the tombstones of deletions made before `before` (ms since the epoch); a host that had
   * not seen them reads the whole store again at its next catch-up. Run by every host now and then.
   */
  async pruneTombstones(before: number): Promise<number> {
    return pruneTombstones(this.pool, before);
  }

  bootRecord(uuid: string): BootRecord | undefined {
    return this.boots.record(uuid);
  }

  beginBoot(uuid: string, at: number, firstRequest: number | null): void {
    this.bootInBackground('beginBoot', { uuid, op: { kind: 'begin', at, firstRequest } });
  }

  markFirstRequest(uuid: string, at: number): void {
    this.bootInBackground('markFirstRequest', { uuid, op: { kind: 'first', at } });
  }

  /**
   * Queues a boot's bookkeeping behind the boot writes made before it (those waiting go as one
   * transaction, pgBootBatch.ts), and lays it over the copy (for a known instance) until it is
   * committed, so that this host reads it at once. A failure (the store is down) is logged and
   * counted, and the copy goes back to what is stored.
   */
  private bootInBackground(operation: string, item: QueuedBoot): void {
    if (this.background.full) return this.background.failed(operation, new Error('too many boot writes are waiting for the store'));
    const held = this.index.byUuid(item.uuid) !== undefined;
    if (held) this.boots.hold(item.uuid, item.op);
    const run = this.background.batched(item, this.writeBoots);
    this.background.detached(operation, () => (held ? run.finally(() => this.boots.settle(item.uuid, item.op)) : run));
  }

  private readonly writeBoots = (items: readonly QueuedBoot[]): Promise<unknown[]> => eachOutcome(items, (some) => this.write(
    async (c, mark) => ({ result: undefined, changes: await writeBoots(c, some, mark) }),
    undefined, (version) => some.forEach((i) => (i.op.version = version))));

  appendBootEvents(batch: ReadonlyMap<string, readonly BootEvent[]>, keep: number): Promise<void> {
    return this.background.queued(() => this.write(async (c, version) => {
      const changes = await boots.appendBootEvents(c, batch, keep, version);
      return { result: undefined, changes };
    }));
  }

  setPassword(name: string, password: string, expires: number): Promise<boolean> {
    return this.write(async (c, version) => {
      const change = await passwords.setPassword(c, name, password, expires, version);
      return { result: change !== null, changes: change ? [change] : [] };
    });
  }

  password(name: string, now: number): string | undefined {
    const instance = this.index.byName(name);
    const stored = instance && this.passwords.get(instance.uuid);
    return stored && stored.expires > now ? stored.password : undefined;
  }

  deletePassword(name: string): Promise<boolean> {
    return this.write(async (c, version) => {
      const change = await passwords.deletePassword(c, name, version);
      return { result: change !== null, changes: change ? [change] : [] };
    });
  }

  purgePasswords(now: number): Promise<number> {
    return this.write(async (c, version) => {
      const changes = await passwords.purgePasswords(c, now, version);
      return { result: changes.length, changes };
    });
  }

  close(): Promise<void> {
    if (this.pruning) clearInterval(this.pruning);
    const done = (async () => {
      await this.settled();
      await this.feed.close();
      await this.pool.end().catch(() => undefined);
    })();
    return done;
  }
}
