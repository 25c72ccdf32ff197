// Boot bookkeeping on the PostgreSQL store comes in floods (every upload begins a boot, every
// VM's first request marks it): the writes that wait in the queue go as one transaction, and
// what that must never cost. Every boot is stored and seen by the other hosts with its number; a
// boot's begin, first request and events stay in the order made, within a batch and across
// batches; an instance deleted meanwhile does not fail the others; the database lost in the
// middle fails each write counted, with the in-memory copy back to what is stored; and a flood
// cannot grow the queue without bound.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { statements, type QueuedBoot } from '../src/store/pgBootBatch.js';
import { PgStore } from '../src/store/postgres.js';
import type { Allocate, BootEvent, Registration } from '../src/store/store.js';
import { PgServer } from './postgres.js';

let server: PgServer;
before(async () => {
  server = await PgServer.start();
});
after(() => server.destroySync());

const opened: PgStore[] = [];
after(async () => {
  for (const s of opened) await s.close();
});

async function open(database: string, host: string): Promise<PgStore> {
  const s = await PgStore.open({ url: server.url(database), password: null, host });
  opened.push(s);
  return s;
}

const uuid = (i: number): string => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const reg = (i: number): Registration => ({
  name: `vm${i}`, uuid: uuid(i), mac: `52:54:00:00:${String(Math.floor(i / 100)).padStart(2, '0')}:${String(i % 100).padStart(2, '0')}`,
  metadata: {}, arch: null, location: 'rack1', host: 'host-a',
});
const lowestFree: Allocate = (isUsed) => {
  for (let i = 1; i < 4000; i++) if (!isUsed(`10.20.${i >> 8}.${i & 255}`)) return `10.20.${i >> 8}.${i & 255}`;
  return null;
};
const event = (name: string, received: number): BootEvent => ({ received, kind: 'start', name, result: null, description: `running ${name}` });

async function registered(store: PgStore, from: number, count: number): Promise<void> {
  const outcomes = await store.registerAll(Array.from({ length: count }, (_, i) => reg(from + i)), lowestFree);
  for (const o of outcomes) assert.ok(!(o instanceof Error), String(o));
}

const counter = async (database: string): Promise<number> => Number((await server.sql<{ counter: string }>('SELECT counter FROM cluster', [], database))[0]?.counter);

/** Holds the change counter's row lock (which every write takes to commit) until `release`. */
async function holdCounter(database: string): Promise<{ release(): Promise<void> }> {
  const holder = new pg.Client({ connectionString: server.url(database) });
  await holder.connect();
  holder.on('error', () => undefined);
  await holder.query('BEGIN');
  await holder.query('SELECT counter FROM cluster FOR UPDATE');
  return { release: async () => void (await holder.query('ROLLBACK').catch(() => undefined), await holder.end().catch(() => undefined)) };
}

test('a batch runs writes of distinct instances in one statement and never lets a write pass an earlier one of its instance', () => {
  const q = (u: string, kind: 'begin' | 'first'): QueuedBoot => ({ uuid: u, op: kind === 'begin' ? { kind, at: 1, firstRequest: null } : { kind, at: 1 } });
  const shown = (items: QueuedBoot[]): string[][] => statements(items).map((s) => s.map((i) => `${i.op.kind} ${i.uuid}`));
  assert.deepEqual(shown([q('a', 'begin'), q('a', 'first'), q('b', 'begin'), q('b', 'first'), q('a', 'begin'), q('c', 'first')]), [
    ['begin a', 'begin b'], ['first a', 'first b', 'first c'], ['begin a'],
  ]);
  assert.deepEqual(shown([q('a', 'first'), q('a', 'first'), q('b', 'begin')]), [['first a'], ['first a'], ['begin b']]);
});

test('700 boot writes made at once on one host take two transactions, not 700; every one is stored and another host reads each with its boot number', async () => {
  const database = await server.createDatabase();
  const a = await open(database, 'host-a');
  const b = await open(database, 'host-b');
  await registered(a, 1, 300);
  const before = await counter(database);
  // Each upload begins a boot, its VM's first request marks it; a hundred are uploaded twice.
  for (let i = 1; i <= 300; i++) a.beginBoot(uuid(i), 1000 + i, null);
  for (let i = 1; i <= 100; i++) a.beginBoot(uuid(i), 5000 + i, null);
  for (let i = 1; i <= 300; i++) a.markFirstRequest(uuid(i), 9000 + i);
  assert.deepEqual(a.bootRecord(uuid(7)), { boot: 2, began: 5007, firstRequest: 9007, events: [] }, 'read at once where it was made');
  await a.settled();
  const commits = (await counter(database)) - before;
  assert.ok(commits <= 2, `${commits} transactions for 700 writes`);
  await b.caughtUp();
  for (let i = 1; i <= 300; i++) {
    const expected = i <= 100 ? { boot: 2, began: 5000 + i, firstRequest: 9000 + i, events: [] } : { boot: 1, began: 1000 + i, firstRequest: 9000 + i, events: [] };
    assert.deepEqual(b.bootRecord(uuid(i)), expected, `vm${i} on the other host`);
    assert.deepEqual(a.bootRecord(uuid(i)), expected, `vm${i} where it was made`);
  }
});

test("a boot's begin, first request and events keep the order they were made in, within a batch and across batches", async () => {
  const database = await server.createDatabase();
  const a = await open(database, 'host-a');
  const b = await open(database, 'host-b');
  await registered(a, 1, 3);
  const [x, y, z] = [uuid(1), uuid(2), uuid(3)];
  // Within one batch: z's begin, then x's first request (beginning its first boot), then x's begin; a
  // statement of begins runs before one of first requests, yet x's begin must not pass x's first request.
  a.beginBoot(z, 500, null);
  a.markFirstRequest(x, 900);
  a.beginBoot(x, 2000, null);
  // Across batches: 496 first requests of VMs not registered fill the batch of 500 (in one statement, each
  // skipped), y's begin is the last in it and its first request the first of the next.
  for (let i = 0; i < 496; i++) a.markFirstRequest(uuid(1000 + i), 10 + i);
  a.beginBoot(y, 3000, null);
  a.markFirstRequest(y, 3100);
  await a.settled();
  await b.caughtUp();
  for (const h of [a, b]) {
    assert.deepEqual(h.bootRecord(x), { boot: 2, began: 2000, firstRequest: null, events: [] });
    assert.deepEqual(h.bootRecord(y), { boot: 1, began: 3000, firstRequest: 3100, events: [] });
    assert.deepEqual(h.bootRecord(z), { boot: 1, began: 500, firstRequest: null, events: [] });
  }
  // Events come after the begin made before them and before the begin made after them.
  a.beginBoot(y, 4000, null);
  const appended = a.appendBootEvents(new Map([[y, [event('init-local', 4050)]]]), 200);
  a.markFirstRequest(y, 4100);
  a.beginBoot(x, 5000, null);
  await appended;
  const events = a.appendBootEvents(new Map([[x, [event('init-network', 5050)]]]), 200);
  a.markFirstRequest(x, 5100);
  await events;
  await a.settled();
  await b.caughtUp();
  for (const h of [a, b]) {
    assert.deepEqual(h.bootRecord(y), { boot: 2, began: 4000, firstRequest: 4100, events: [event('init-local', 4050)] });
    assert.deepEqual(h.bootRecord(x), { boot: 3, began: 5000, firstRequest: 5100, events: [event('init-network', 5050)] });
  }
});

test('a batch holding a write for an instance deleted meanwhile stores the others and counts no fault', async () => {
  const database = await server.createDatabase();
  const a = await open(database, 'host-a');
  const b = await open(database, 'host-b');
  const faults: string[] = [];
  a.onBackgroundFault((operation) => faults.push(operation));
  await registered(a, 1, 4);
  a.beginBoot(uuid(4), 100, null);
  await a.settled();
  // The boot of vm4 locked by another session: host-a's next write waits, and the ones after it wait in the queue.
  const locker = new pg.Client({ connectionString: server.url(database) });
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('SELECT * FROM boots WHERE uuid = $1 FOR UPDATE', [uuid(4)]);
    a.beginBoot(uuid(4), 200, null);
    await new Promise((res) => setTimeout(res, 20));
    a.beginBoot(uuid(1), 300, null);
    a.beginBoot(uuid(2), 300, 310);
    a.markFirstRequest(uuid(2), 320);
    a.beginBoot(uuid(3), 300, null);
    // Meanwhile vm2 is deleted on the other host.
    assert.ok(await b.delete('vm2'));
    await locker.query('ROLLBACK');
  } finally {
    await locker.end();
  }
  await a.settled();
  await b.caughtUp();
  await a.caughtUp();
  assert.deepEqual(faults, []);
  for (const h of [a, b]) {
    assert.deepEqual([1, 2, 3, 4].map((i) => h.bootRecord(uuid(i))?.boot), [1, undefined, 1, 2]);
  }
  assert.deepEqual(await server.sql('SELECT uuid FROM boots WHERE uuid = $1', [uuid(2)], database), [], 'nothing stored for the deleted instance');
});

test('the database lost while a batch waits to commit: every write of it and of the batch queued behind fails counted, and the copy goes back to what is stored', async () => {
  const database = await server.createDatabase();
  const a = await open(database, 'host-a');
  const faults: string[] = [];
  a.onBackgroundFault((operation) => faults.push(operation));
  await registered(a, 1, 3);
  for (let i = 1; i <= 3; i++) a.beginBoot(uuid(i), 1000, null);
  await a.settled();
  const stored = { boot: 1, began: 1000, firstRequest: null, events: [] };
  const lock = await holdCounter(database);
  try {
    a.beginBoot(uuid(1), 2000, null);
    a.markFirstRequest(uuid(1), 2100);
    const waiting = async (): Promise<boolean> =>
      (await server.sql<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'mdserver host-a' AND wait_event_type = 'Lock'`, [], database))[0]?.n === '1';
    for (let i = 0; !(await waiting()); i++) assert.ok(i < 300, 'the first batch waits for the counter');
    for (let i = 1; i <= 3; i++) a.beginBoot(uuid(i), 3000, null);
    a.markFirstRequest(uuid(3), 3100);
    assert.deepEqual(a.bootRecord(uuid(1)), { boot: 3, began: 3000, firstRequest: null, events: [] }, 'held over the copy meanwhile');
    assert.deepEqual(a.bootRecord(uuid(3)), { boot: 2, began: 3000, firstRequest: 3100, events: [] });
    await server.sql(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`);
    await server.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, [database]);
    await a.settled();
  } finally {
    await lock.release();
    await server.sql(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
  }
  assert.deepEqual(faults.sort(), ['beginBoot', 'beginBoot', 'beginBoot', 'beginBoot', 'markFirstRequest', 'markFirstRequest']);
  for (let i = 1; i <= 3; i++) assert.deepEqual(a.bootRecord(uuid(i)), stored, `vm${i} as stored`);
  const b = await open(database, 'host-b');
  for (let i = 1; i <= 3; i++) assert.deepEqual(b.bootRecord(uuid(i)), stored, `vm${i}: nothing of the lost batches was written`);
});

test('attack: a flood of uploads while the store is slow queues at most 10000 boot writes, drops and counts the rest, and stores what it queued', async () => {
  const database = await server.createDatabase();
  const a = await open(database, 'host-a');
  const faults: string[] = [];
  a.onBackgroundFault((operation) => faults.push(operation));
  await registered(a, 1, 100);
  const before = await counter(database);
  const counterLock = await holdCounter(database);
  try {
    for (let i = 0; i < 10_050; i++) a.beginBoot(uuid(1 + (i % 100)), 1000 + i, null);
    assert.equal(faults.length, 50, 'the writes past the bound are dropped and counted');
    assert.ok(faults.every((f) => f === 'beginBoot'));
  } finally {
    await counterLock.release();
  }
  await a.settled();
  assert.equal(faults.length, 50);
  const commits = (await counter(database)) - before;
  assert.ok(commits <= 20, `${commits} transactions for 10000 writes`);
  assert.deepEqual(a.bootRecord(uuid(1)), { boot: 100, began: 1000 + 9900, firstRequest: null, events: [] });
  const b = await open(database, 'host-b');
  assert.deepEqual(b.bootRecord(uuid(100)), { boot: 100, began: 1000 + 9999, firstRequest: null, events: [] });
});

test('a write the database refuses fails alone, counted: the others of its batch are stored', async () => {
  const database = await server.createDatabase();
  const a = await open(database, 'host-a');
  const faults: string[] = [];
  a.onBackgroundFault((operation) => faults.push(operation));
  await registered(a, 1, 3);
  a.beginBoot(uuid(1), 1000, null);
  // Not a time PostgreSQL takes as a bigint: the statement holding it is refused.
  a.beginBoot(uuid(2), Number.NaN, null);
  a.beginBoot(uuid(3), 1000, null);
  a.markFirstRequest(uuid(1), 1100);
  await a.settled();
  assert.deepEqual(faults, ['beginBoot']);
  const b = await open(database, 'host-b');
  for (const h of [a, b]) {
    assert.deepEqual([1, 2, 3].map((i) => h.bootRecord(uuid(i))?.firstRequest), [1100, undefined, null]);
  }
});
