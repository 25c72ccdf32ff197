// Keeps a host's in-memory copies of the replicated tables current: one connection that LISTENs
// for the commits of every host, and a catch-up that reads what changed after the last change
// counter this host has seen. A notification only says "something changed"; what changed always
// comes from the catch-up, so a notification lost while the connection was down costs nothing:
// the catch-up after the reconnect reads it all. Losing the connection is a state change (logged
// once); the feed reconnects by itself with a growing delay.

import pg from 'pg';
import { describe } from '../errors.js';
import type { Logger } from '../log.js';
import { stalePlan } from './pgPrepared.js';

export const CHANNEL = 'mdserver_changes';

/** A deleted (or rekeyed away) instance, as its tombstone row reads. */
export interface Tombstone {
  readonly uuid: string;
  readonly version: string;
}

/**
 * One replicated table: the statements that read its changes after the change counter `$1` (-1:
 * all of it), and what applies the rows they returned. A catch-up sends every table's statements
 * in one message, inside one snapshot, and applies every table's rows at once, once all are read,
 * so that no reader sees a snapshot half applied (an instance without its boot, say). `gone` holds
 * the instances deleted since; with `resync` (a full read, at that change counter) there are none
 * to read, and what the copy holds that the table no longer does goes as of that counter:
 * tombstones older than this host's last catch-up may have been pruned.
 */
export interface FeedTable {
  readonly statements: readonly string[];
  apply(results: readonly pg.QueryResult[], gone: readonly Tombstone[], resync: number | null): () => void;
}

/** The statements every catch-up runs, each prepared on the feed's connection as mds_feed_<i>. */
function feedStatements(tables: readonly FeedTable[]): string[] {
  return ['SELECT counter, pruned FROM cluster', 'SELECT uuid, version::text FROM tombstones WHERE version > $1', ...tables.flatMap((t) => t.statements)];
}

/**
 * The statements of one catch-up, each prepared on the connection (see prepareText): parsing
 * and planning them at every catch-up of every host was a good part of the database's work per
 * upload. Only a message without parameters may carry several statements, so `after` is written
 * into the text: an integer this host keeps itself (checked here), never anything a client sent.
 */
function catchUpText(tables: readonly FeedTable[], after: number): { text: string; counts: number[] } {
  if (!Number.isSafeInteger(after)) throw new Error(`a catch-up after ${after}: not a change counter`);
  const n = feedStatements(tables).length;
  const run = Array.from({ length: n }, (_, i) => (i === 0 ? 'EXECUTE mds_feed_0' : `EXECUTE mds_feed_${i}(${after})`));
  // A full read (after = -1) replaces the copy: no deletion needs reading then.
  if (after < 0) run[1] = 'SELECT NULL::text AS uuid, NULL::text AS version WHERE false';
  const statements = ['BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', ...run, 'COMMIT'];
  return { text: statements.join(';\n'), counts: tables.map((t) => t.statements.length) };
}

/** The message that prepares the catch-up's statements on a connection (parameter $1: the change counter). */
function prepareText(tables: readonly FeedTable[]): string {
  return feedStatements(tables).map((t, i) => (i === 0 ? `PREPARE mds_feed_0 AS ${t}` : `PREPARE mds_feed_${i}(bigint) AS ${t}`)).join(';\n');
}

export interface FeedState {
  readonly connected: boolean;
  /** Milliseconds since the epoch of the last change of `connected`. */
  readonly since: number;
  /** Why the connection was lost, while it is. */
  readonly error: string | null;
  /** The last change counter every change up to which this host has applied. */
  readonly seen: number;
}

const MIN_DELAY_MS = 100;

/**
 * The least time between the starts of two catch-ups. Every commit of every host notifies every
 * host; during an upload storm one catch-up per notification would cost each host and the
 * database a transaction per commit, while one every few milliseconds reads the same changes in
 * bulk. A change still reaches every host well within the second that propagation is allowed.
 */
const CATCH_UP_GAP_MS = 20;
const MAX_DELAY_MS = 5_000;

export class PgFeed {
  private client: pg.Client | null = null;
  private seenCounter = -1;
  private connected = false;
  private since = Date.now();
  private error: string | null = null;
  private delay = MIN_DELAY_MS;
  private retry: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private lastStart = 0;
  private gap: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly waiters: { counter: number; resolve: () => void }[] = [];

  constructor(
    private readonly newClient: () => pg.Client,
    private readonly tables: readonly FeedTable[],
    private readonly log: Logger,
    /** Called after each catch-up, which may have applied changes. */
    private readonly afterCatchUp: () => void = () => undefined,
  ) {}

  get seen(): number {
    return this.seenCounter;
  }

  state(): FeedState {
    return { connected: this.connected, since: this.since, error: this.error, seen: this.seenCounter };
  }

  /** Connects, listens and loads everything; rejects when the database cannot be reached now. */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = this.newClient();
    client.on('error', (e) => this.lost(client, e));
    client.on('end', () => this.lost(client, new Error('the connection was closed')));
    client.on('notification', () => this.schedule());
    try {
      await client.connect();
      // LISTEN before reading: a commit after the catch-up's snapshot is then always notified.
      await client.query(`LISTEN ${CHANNEL}`);
      await client.query(prepareText(this.tables));
      this.client = client;
      await this.catchUp(client);
    } catch (e) {
      this.client = null;
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      throw e;
    }
    if (!this.connected) {
      if (this.error !== null) this.log.warn('the instance store is reachable again; caught up', { seen: this.seenCounter });
      this.connected = true;
      this.since = Date.now();
      this.error = null;
    }
    this.delay = MIN_DELAY_MS;
  }

  private lost(client: pg.Client, e: Error): void {
    if (this.client !== client) return;
    this.client = null;
    client.removeAllListeners('end');
    client.end().catch(() => undefined);
    this.markDown(e);
  }

  /** Records that the store is unreachable (logged once per loss) and schedules a reconnect. */
  private markDown(e: unknown): void {
    if (this.closed) return;
    if (this.connected || this.error === null) {
      this.log.error('the instance store is unreachable: serving what is in memory, refusing uploads until it is back', { error: describe(e) });
      this.connected = false;
      this.since = Date.now();
    }
    this.error = describe(e);
    if (this.retry === null && this.client === null) this.reconnectLater();
  }

  private reconnectLater(): void {
    this.retry = setTimeout(() => {
      this.retry = null;
      this.connect().catch((e: unknown) => {
        this.error = describe(e);
        this.reconnectLater();
      });
    }, this.delay);
    this.retry.unref();
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
  }

  /**
   * Runs a catch-up soon: one at a time, one more if asked meanwhile, and starts at least
   * CATCH_UP_GAP_MS apart (the ones asked for in between are one).
   */
  schedule(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.gap) return;
    const client = this.client;
    if (!client) return;
    const wait = this.lastStart + CATCH_UP_GAP_MS - performance.now();
    if (wait > 0) {
      this.gap = setTimeout(() => {
        this.gap = null;
        this.schedule();
      }, wait);
      return;
    }
    this.lastStart = performance.now();
    this.running = this.catchUp(client)
      .catch((e: unknown) => {
        if (!this.closed) this.log.warn('catching up with the instance store failed; retrying at the next change', { error: describe(e) });
      })
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.schedule();
        }
      });
  }

  private async catchUp(client: pg.Client): Promise<void> {
    let read: Awaited<ReturnType<PgFeed['readAfter']>>;
    try {
      read = await this.readAfter(client, this.seenCounter);
    } catch (e) {
      // Prepared afresh by the failed read (see readAfter): this read goes through.
      if (!stalePlan(e)) throw e;
      read = await this.readAfter(client, this.seenCounter);
    }
    // Tombstones after what this host has seen were pruned: it was away too long for a catch-up.
    // (Before its first read it has seen nothing, and that read was already a full one.)
    if (this.seenCounter >= 0 && read.pruned > this.seenCounter) {
      this.log.warn('this host was behind for longer than deletions are kept: reading the whole store again', { seen: this.seenCounter, pruned: read.pruned });
      read = await this.readAfter(client, -1);
    }
    for (const a of read.apply) a();
    if (read.counter > this.seenCounter) this.seenCounter = read.counter;
    this.afterCatchUp();
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i] as { counter: number; resolve: () => void };
      if (w.counter <= this.seenCounter) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /**
   * Reads every table's changes after `after` (-1: everything) in one snapshot and one round trip.
   * Nothing is applied yet: a caller that finds the read too old (pruned) throws it away.
   */
  private async readAfter(client: pg.Client, after: number): Promise<{ counter: number; pruned: number; apply: (() => void)[] }> {
    const { text, counts } = catchUpText(this.tables, after);
    let results: pg.QueryResult[];
    try {
      results = (await client.query(text)) as unknown as pg.QueryResult[];
    } catch (e) {
      // A statement failed inside the transaction: it must end before the connection is used again.
      // Its prepared statements are made again: one that failed because a newer host's migration
      // changed the columns it reads ("cached plan must not change result type") would fail at
      // every catch-up until then.
      await client.query(`ROLLBACK;\nDEALLOCATE ALL;\n${prepareText(this.tables)}`).catch(() => undefined);
      throw e;
    }
    const row = results[1]?.rows[0] as { counter: string; pruned: string } | undefined;
    const counter = Number(row?.counter ?? 0);
    const gone = (results[2]?.rows ?? []) as Tombstone[];
    const resync = after < 0 ? counter : null;
    let at = 3;
    const apply = this.tables.map((t, i) => {
      const own = results.slice(at, (at += counts[i] ?? 0));
      return t.apply(own, gone, resync);
    });
    return { counter, pruned: Number(row?.pruned ?? 0), apply };
  }

  /** Resolves once every change up to `counter` is applied here (for tests and `store copy`). */
  reached(counter: number): Promise<void> {
    if (counter <= this.seenCounter) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ counter, resolve }));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.gap) clearTimeout(this.gap);
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
    }
    await this.running;
  }
}
