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

/**
 * One replicated table: reads its changes after `seen` inside the catch-up's snapshot, and returns
 * what applies them. The catch-up applies every table's at once, once all are read, so that no
 * reader sees a snapshot half applied (an instance without its boot, say). With `resync` (the
 * snapshot's change counter) it reads the whole table instead, and what the copy holds that the
 * table no longer does goes as of that counter: tombstones older than this host's last catch-up
 * may have been pruned.
 */
export interface FeedTable {
  read(client: pg.ClientBase, seen: number, resync: number | null): Promise<() => void>;
}

/** The tombstones a catch-up after `seen` applies: none on a full read, which replaces the copy. */
export async function tombstonesAfter(client: pg.ClientBase, seen: number, resync: number | null): Promise<{ uuid: string; version: string }[]> {
  if (resync !== null) return [];
  return (await client.query<{ uuid: string; version: string }>('SELECT uuid, version FROM tombstones WHERE version > $1', [seen])).rows;
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

  /** Runs a catch-up soon: one at a time, and one more if asked meanwhile. */
  schedule(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    const client = this.client;
    if (!client) return;
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
    // One snapshot for the counter and the rows: every change up to that counter is in it.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      const row = (await client.query<{ counter: string; pruned: string }>('SELECT counter, pruned FROM cluster')).rows[0];
      const counter = Number(row?.counter ?? 0);
      // Tombstones after what this host has seen were pruned: it was away too long for a catch-up.
      const resync = this.seenCounter < Number(row?.pruned ?? 0) ? counter : null;
      if (resync !== null && this.seenCounter >= 0) {
        this.log.warn('this host was behind for longer than deletions are kept: reading the whole store again', { seen: this.seenCounter, pruned: Number(row?.pruned) });
      }
      const apply: (() => void)[] = [];
      for (const t of this.tables) apply.push(await t.read(client, this.seenCounter, resync));
      await client.query('COMMIT');
      for (const a of apply) a();
      if (counter > this.seenCounter) this.seenCounter = counter;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
    this.afterCatchUp();
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i] as { counter: number; resolve: () => void };
      if (w.counter <= this.seenCounter) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** Resolves once every change up to `counter` is applied here (for tests and `store copy`). */
  reached(counter: number): Promise<void> {
    if (counter <= this.seenCounter) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ counter, resolve }));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
    }
    await this.running;
  }
}
