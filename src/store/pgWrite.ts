// One write of the PostgreSQL store: a transaction that first takes the change counter's row lock
// (which orders the writes of all hosts and stamps what they change), brings the instances' copy
// up to date with every earlier commit, runs the write's statements, notifies the other hosts, and
// hands the changes to apply here once committed. What it changes is postgres.ts's to apply.

import pg from 'pg';
import { describe, MdsError } from '../errors.js';
import type { InstanceIndex } from './instanceIndex.js';
import type { BootChange } from './pgBoots.js';
import { CHANNEL, type PgFeed } from './pgFeed.js';
import { instancesFeed, type LocalChange } from './pgInstances.js';
import type { PasswordChange } from './pgPasswords.js';

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

/** A write's work inside its transaction: its result, and the changes to apply once committed. */
export type Work<T> = (c: pg.PoolClient, version: number) => Promise<{ result: T; changes: Change[] }>;

/**
 * Runs `work` in one transaction that holds the change counter's row lock, then calls `apply`
 * with its changes. Every failure to reach the database becomes STORE_UNAVAILABLE: the
 * transaction did not commit, or (if the connection broke during COMMIT) a retry finds what it stored.
 */
export async function transaction<T>(
  pool: pg.Pool, feed: PgFeed, index: InstanceIndex, work: Work<T>, apply: (version: number, changes: readonly Change[]) => void,
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
    await c.query('BEGIN');
    const version = Number((await c.query<{ counter: string }>('UPDATE cluster SET counter = counter + 1 RETURNING counter')).rows[0]?.counter);
    // Holding the lock, this sees every earlier commit: the copy is brought up to date with it.
    (await instancesFeed(index).read(c, feed.seen))();
    const done = await work(c, version);
    await c.query('SELECT pg_notify($1, $2)', [CHANNEL, String(version)]);
    await c.query('COMMIT');
    apply(version, done.changes);
    return done.result;
  } catch (e) {
    broken ||= unreachable(e);
    if (!broken) await c.query('ROLLBACK').catch(() => undefined);
    if (broken) throw unavailable(e);
    throw e;
  } finally {
    c.removeListener('error', lost);
    c.release(broken);
  }
}
