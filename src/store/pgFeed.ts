// Keeps a host's in-memory copies of the replicated tables current: one connection that LISTENs
// for the commits of every host, and a catch-up that reads what changed after the last change
// counter this host has seen. A notification only says "something changed"; what changed always
// comes from the catch-up, so a notification lost while the connection was down costs nothing:
// the catch-up after the reconnect reads it all. Losing the connection is a state change (logged
// once); the feed reconnects by itself with a growing delay.

import pg from 'pg';
import { describe } from '../errors.js';
import type { Logger } from '../log.js';

export const CHANNEL = 'mdserver_changes';

/** A deleted (or rekeyed away) instance, as its tombstone row reads. */
export interface Tombstone {
  readonly uuid: string;
  readonly version: string;
}

/**
 * One replicated table: the statements that read its changes after `after` (-1: all of it), and
 * what applies the rows they returned. A catch-up sends every table's statements in one message,
 * inside one snapshot, and applies every table's rows at once, once all are read, so that no
 * reader sees a snapshot half applied (an instance without its boot, say). `gone` holds the
 * instances deleted since; with `resync` (a full read, at that change counter) there are none to
 * read, and what the copy holds that the table no longer does goes as of that counter: tombstones
 * older than this host's last catch-up may have been pruned.
 */
export interface FeedTable {
  statements(after: number): string[];
  apply(results: readonly pg.QueryResult[], gone: readonly Tombstone[], resync: number | null): () => void;
}

/**
 * The statements of one catch-up. `after` is written into the text, not passed as a parameter:
 * only a message without parameters may carry several statements, and it is an integer this host
 * keeps itself (checked here), never anything a client sent.
 */
function catchUpText(tables: readonly FeedTable[], after: number): { text: string; counts: number[] } {
  if (!Number.isSafeInteger(after)) throw new Error(`a catch-up after ${after}: not a change counter`);
  const own = tables.map((t) => t.statements(after));
  const statements = [
    'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
    'SELECT counter, pruned FROM cluster',
    // A full read (after = -1) replaces the copy: no deletion needs reading then.
    after < 0 ? 'SELECT NULL::text AS uuid, NULL::text AS version WHERE false' : `SELECT uuid, version::text FROM tombstones WHERE version > ${after}`,
    ...own.flat(),
    'COMMIT',
  ];
  return { text: statements.join(';\n'), counts: own.map((o) => o.length) };
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
    let read = await this.readAfter(client, this.seenCounter);
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
      await client.query('ROLLBACK').catch(() => undefined);
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
