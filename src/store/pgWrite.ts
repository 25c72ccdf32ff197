// One write of the PostgreSQL store: a transaction that runs the write's statements, then takes
// the change counter's row lock (which orders the writes of all hosts) only for its last round
// trip, stamping what it wrote, notifying the other hosts and committing; it hands the changes to
// apply here once committed. What it changes is postgres.ts's to apply.

import pg from 'pg';
import { describe, MdsError } from '../errors.js';
import type { BootChange } from './pgBoots.js';
import { CHANNEL, type PgFeed } from './pgFeed.js';
import type { LocalChange } from './pgInstances.js';
import type { PasswordChange } from './pgPasswords.js';
import { sqlPrepared, stalePlan } from './pgPrepared.js';

/** A failure to reach the database, as opposed to a refusal by it. */
export function unreachable(e: unknown): boolean {
  if (e instanceof MdsError) return false;
  if (e instanceof pg.DatabaseError) return /^(08|57P)/.test(e.code ?? '');
  return true;
}

export function unavailable(e: unknown): MdsError {
  return new MdsError('STORE_UNAVAILABLE', `the instance store (PostgreSQL) is unreachable, nothing was stored: ${describe(e)}`, { cause: e });
}

export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** A change made inside a transaction, applied to the in-memory copies once it is committed. */
export type Change = LocalChange | BootChange | PasswordChange;

/**
 * A write's work inside its transaction: its result, and the changes to apply once committed.
 * Every row it writes it stamps with `mark` (MARK): the change counter's value is only taken at
 * the end, when the marked rows get it (see stampAndCommit).
 */
export type Work<T> = (c: pg.PoolClient, mark: number) => Promise<{ result: T; changes: Change[] }>;

/**
 * The version a write stamps its rows with until it commits. Only the writing transaction ever
 * sees its own marked rows: another's are invisible until committed, and stampAndCommit leaves
 * none behind, so one constant serves every transaction of every host.
 */
export const MARK = -1;

/** The replicated tables: each row carries the change counter's value of the change that wrote it. */
const STAMPED = ['instances', 'tombstones', 'boots', 'boot_events', 'passwords'];

/**
 * Takes the next change counter value, stamps every row this transaction marked with it, tells
 * the other hosts and commits, in one message: the counter's row lock (which orders all hosts'
 * writes) is held only while the server runs it, never across a round trip to a host whose event
 * loop may be busy. The rows were locked by the write before it took the counter, so a row's
 * versions still rise in the order its writes commit. A write whose connection is cut while it
 * waits for the lock is abandoned by the server (client_connection_check_interval, set on every
 * connection, see CONNECTION_CHECK), so it does not commit what the upload was told is not stored.
 */
const STAMP = sqlPrepared('mds_stamp', `WITH c AS (UPDATE cluster SET counter = counter + 1 RETURNING counter),
  ${STAMPED.map((t) => `s_${t} AS (UPDATE ${t} SET version = (SELECT counter FROM c) WHERE version = ${MARK})`).join(',\n  ')}
  SELECT counter, pg_notify('${CHANNEL}', counter::text) FROM c`);

/** Prepared (it plans five UPDATEs), so that the server plans it once per connection, not at every commit. */
const STAMP_AND_COMMIT = `${STAMP.execute};\n  COMMIT`;

/**
 * How often, in milliseconds, a session's server checks that its client is still connected while
 * a statement runs (PostgreSQL 14 and later), so that a write waiting for the change counter ends
 * soon after its host gave up on it. Set on each connection of the store's pool.
 */
export const CONNECTION_CHECK = 'SET client_connection_check_interval = 20';

async function stampAndCommit(c: pg.PoolClient): Promise<number> {
  const results = (await c.query(STAMP_AND_COMMIT)) as unknown as pg.QueryResult<{ counter: string }>[];
  return Number(results[0]?.rows[0]?.counter);
}

/** Refusals that a retry of the whole transaction resolves: two hosts' writes locked rows in opposite orders, or a stale plan. */
function retryable(e: unknown): boolean {
  return (e instanceof pg.DatabaseError && (e.code === '40P01' || e.code === '40001')) || stalePlan(e);
}

const ATTEMPTS = 3;

/**
 * Runs `work` in one transaction, stamps and commits it (stampAndCommit), then calls `apply` with
 * its changes and version. Writes of different hosts run side by side; the database's row locks
 * and unique constraints settle what they share. Every failure to reach the database becomes
 * STORE_UNAVAILABLE: the transaction did not commit, or (if the connection broke during COMMIT) a
 * retry finds what it stored.
 */
export async function transaction<T>(
  pool: pg.Pool, feed: PgFeed, work: Work<T>, apply: (version: number, changes: readonly Change[]) => void,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await attemptOnce(pool, feed, work, apply);
    } catch (e) {
      if (attempt >= ATTEMPTS || !retryable(e)) throw e;
    }
  }
}

async function attemptOnce<T>(
  pool: pg.Pool, feed: PgFeed, work: Work<T>, apply: (version: number, changes: readonly Change[]) => void,
): Promise<T> {
  if (!feed.state().connected) throw unavailable(new Error(feed.state().error ?? 'not connected'));
  let c: pg.PoolClient;
  try {
    c = await pool.connect();
  } catch (e) {
    // The feed's own connection says whether the store is down (and reconnects); this write just fails.
    throw unavailable(e);
  }
  let broken = false;
  // A checked-out client has no listener of its own: without this one, the connection dying in
  // the middle of the transaction (the database stopped) would be an uncaught exception. The query
  // under way fails with it too, so noting it is enough.
  const lost = (): void => {
    broken = true;
  };
  c.on('error', lost);
  try {
    // Outside the transaction: a statement that fails to prepare leaves nothing to roll back.
    await STAMP.ensure(c);
    await c.query('BEGIN');
    const done = await work(c, MARK);
    const version = await stampAndCommit(c);
    apply(version, done.changes);
    return done.result;
  } catch (e) {
    // Dropped, so that the retry (see retryable) gets a connection that prepares its statements afresh.
    const stale = stalePlan(e);
    broken ||= stale || unreachable(e);
    if (!broken) await c.query('ROLLBACK').catch(() => undefined);
    if (stale) throw e;
    if (broken) throw unavailable(e);
    throw e;
  } finally {
    c.removeListener('error', lost);
    c.release(broken);
  }
}
