// The PostgreSQL store's writes run side by side on several hosts (the change counter is taken only
// at the end of each): what that must never cost. A write that began first and commits last is
// still seen by every host, also by one that reconnected in between; two hosts choosing the same
// address or registering the same domain at the same moment both succeed, with one row each and
// distinct addresses; a write cut while it waits for the counter leaves nothing behind. And the
// deletions' tombstones are pruned after a while without a host that was away serving a deleted VM.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { moduleLogger } from '../src/log.js';
import { InstanceIndex } from '../src/store/instanceIndex.js';
import { PgFeed } from '../src/store/pgFeed.js';
import { ADDRESS_LOCKS, instancesFeed } from '../src/store/pgInstances.js';
import type { PgStore } from '../src/store/postgres.js';
import { MdsError } from '../src/errors.js';
import type { Allocate, Registration } from '../src/store/store.js';
import { cutWhileWaitingForCounter, hostsOnOneDatabase } from './postgres.js';

const db = hostsOnOneDatabase(['a', 'b', 'c']);
const hosts = db.hosts;

const reg = (i: number, extra: Partial<Registration> = {}): Registration => ({
  name: `vm${i}`, uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, mac: `52:54:00:00:01:${String(i % 100).padStart(2, '0')}`,
  metadata: {}, arch: null, location: 'rack1', host: 'host-a', ...extra,
});

/** Always the lowest address its copy thinks free: two hosts with the same copy choose the same one. */
const lowestFree: Allocate = (isUsed) => {
  for (let i = 1; i <= 50; i++) if (!isUsed(`10.9.0.${i}`)) return `10.9.0.${i}`;
  return null;
};

async function within(what: string, ms: number, check: () => boolean): Promise<void> {
  const started = Date.now();
  while (!check()) {
    assert.ok(Date.now() - started < ms, `${what} within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

const ok = <T>(r: T | Error | undefined): T => {
  if (r === undefined || r instanceof Error) assert.fail(String(r));
  return r;
};

test('a write that began first and commits after a later one was seen still reaches every host, also one that reconnected in between', async () => {
  const [a, b, c] = hosts as [PgStore, PgStore, PgStore];
  ok((await a.registerAll([reg(1)], lowestFree))[0]);
  await c.caughtUp();
  // Another session holds vm1's row: host a's group inserts vm2, then waits on vm1 inside its transaction.
  const holder = new pg.Client({ connectionString: db.server.url(db.database) });
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query(`SELECT * FROM instances WHERE name = 'vm1' FOR UPDATE`);
    const slow = a.registerAll([reg(2), reg(1, { metadata: { role: 'changed' } })], lowestFree);
    const waiting = async (): Promise<boolean> =>
      (await db.server.sql<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'mdserver host-a' AND wait_event_type = 'Lock'`, [], db.database))[0]?.n === '1';
    for (let i = 0; !(await waiting()); i++) assert.ok(i < 300, 'host a waits inside its transaction');
    // Meanwhile host b's write commits, and host c sees it...
    ok((await b.registerAll([reg(3, { host: 'host-b' })], () => '10.9.1.3'))[0]);
    await within('host c sees vm3', 2000, () => c.byName('vm3') !== undefined);
    // ...and then loses its feed and reconnects, catching up from what it had seen.
    await db.server.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'mdserver host-c feed'`, [], db.database);
    await within('host c notices the loss', 3000, () => !c.reachability().ok);
    await within('host c reconnects', 5000, () => c.reachability().ok);
    await holder.query('ROLLBACK');
    const [two, one] = await slow;
    assert.equal(ok(one).instance.metadata.role, 'changed');
    await within('host c serves the write that committed last', 1000, () => c.byName('vm2')?.ipv4 === ok(two).instance.ipv4 && c.byName('vm1')?.metadata.role === 'changed');
    await within('host b too', 1000, () => b.byName('vm2') !== undefined && b.byName('vm1')?.metadata.role === 'changed');
  } finally {
    await holder.end();
  }
});

test('two hosts choosing the same address at the same moment both succeed, with distinct addresses', async () => {
  const [a, b] = hosts as [PgStore, PgStore];
  await Promise.all([a.caughtUp(), b.caughtUp()]);
  const [ra, rb] = await Promise.all([a.registerAll([reg(10)], lowestFree), b.registerAll([reg(11, { host: 'host-b' })], lowestFree)]);
  const ipA = ok(ra?.[0]).instance.ipv4;
  const ipB = ok(rb?.[0]).instance.ipv4;
  assert.notEqual(ipA, ipB);
  const rows = await db.server.sql<{ ipv4: string }>(`SELECT ipv4 FROM instances WHERE name IN ('vm10', 'vm11')`, [], db.database);
  assert.deepEqual(rows.map((r) => r.ipv4).sort(), [ipA, ipB].sort());
});

test('two hosts registering the same new domain at the same moment store it once, with one address', async () => {
  const [a, b, c] = hosts as [PgStore, PgStore, PgStore];
  const [ra, rb] = await Promise.all([a.registerAll([reg(20)], lowestFree), b.registerAll([reg(20, { host: 'host-b' })], lowestFree)]);
  assert.equal(ok(ra?.[0]).instance.ipv4, ok(rb?.[0]).instance.ipv4);
  const rows = await db.server.sql(`SELECT uuid FROM instances WHERE name = 'vm20'`, [], db.database);
  assert.equal(rows.length, 1);
  await within('every host serves it', 1000, () => c.byName('vm20')?.ipv4 === ok(ra?.[0]).instance.ipv4);
});

test('an upload whose connection is cut while it waits for the change counter stores nothing, not even half', async () => {
  const [a, b] = hosts as [PgStore, PgStore];
  const failed = await cutWhileWaitingForCounter(db.server, db.database, a, 'host-a', () => a.registerAll([reg(30), reg(31)], lowestFree));
  assert.match(String(failed), /STORE_UNAVAILABLE|unreachable/);
  // The cut session goes on waiting for the counter, then finds no COMMIT and ends: nothing of it stays.
  for (let i = 0; ; i++) {
    const open = await db.server.sql(`SELECT pid FROM pg_stat_activity WHERE application_name = 'mdserver host-a' AND state <> 'idle'`, [], db.database);
    if (open.length === 0) break;
    assert.ok(i < 300, 'the cut session ends');
    await new Promise((res) => setTimeout(res, 10));
  }
  assert.deepEqual(await db.server.sql(`SELECT uuid FROM instances WHERE name IN ('vm30', 'vm31') OR version < 0`, [], db.database), []);
  assert.equal(a.byName('vm30'), undefined);
  assert.equal(b.byName('vm30'), undefined);
});

test("deletions' tombstones are pruned after a while; a host away since before the pruning reads the whole store again and serves no deleted VM", async () => {
  const [a, b, c] = hosts as [PgStore, PgStore, PgStore];
  ok((await a.registerAll([reg(40), reg(41)], lowestFree))[0]);
  await within('host c sees vm40', 2000, () => c.byName('vm40') !== undefined);
  // Host c is cut off: its feed ends and the db.database takes no new connection (the pools keep theirs).
  await db.server.sql(`ALTER DATABASE ${db.database} ALLOW_CONNECTIONS false`);
  try {
    await db.server.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'mdserver host-c feed'`, [], 'postgres');
    await within('host c notices the loss', 3000, () => !c.reachability().ok);
    assert.ok(await a.delete('vm40'));
    ok((await a.registerAll([reg(42)], lowestFree))[0]);
    // A recent deletion is kept; once older than the age given, it goes.
    assert.equal(await a.pruneTombstones(Date.now() - 3600_000), 0);
    assert.ok((await a.pruneTombstones(Date.now() + 1000)) >= 1);
  } finally {
    await db.server.sql(`ALTER DATABASE ${db.database} ALLOW_CONNECTIONS true`);
  }
  await within('host c reconnects', 8000, () => c.reachability().ok);
  await within('host c forgets the deleted VM and serves the new one', 1000, () => c.byName('vm40') === undefined && c.byName('vm42') !== undefined);
  assert.ok(c.byName('vm41'), 'what was not deleted stays');
  await within('host b, connected all along, forgets it too', 1000, () => b.byName('vm40') === undefined);
  assert.equal((await db.server.sql(`SELECT count(*)::int AS n FROM tombstones`, [], db.database))[0]?.n, 0);
});

test('a storm of commits reaches another host in full, read in catch-ups spaced apart rather than one per commit', async () => {
  const [a, b] = hosts as [PgStore, PgStore];
  // A host's feed on its own, to count its catch-ups.
  const index = new InstanceIndex();
  let catchUps = 0;
  const feed = new PgFeed(() => new pg.Client({ connectionString: db.server.url(db.database) }), [instancesFeed(index)], moduleLogger('store'), () => catchUps++);
  await feed.start();
  try {
    const before = catchUps;
    const started = performance.now();
    // 60 commits from two hosts, each a notification to every host.
    // Each host from its own range: what is counted here is catch-ups, not two hosts racing for
    // one address (the tests above), which two lowest-free allocators in lockstep would do again and again.
    const storm = (k: number): Allocate => (isUsed) => {
      for (let i = 1; i < 255; i++) if (!isUsed(`10.9.${3 + k}.${i}`)) return `10.9.${3 + k}.${i}`;
      return null;
    };
    await Promise.all([a, b].map(async (h, k) => {
      for (let i = 0; i < 30; i++) ok((await h.registerAll([reg(300 + k * 30 + i, { mac: `52:54:00:00:03:${(k * 30 + i).toString(16).padStart(2, '0')}` })], storm(k)))[0]);
    }));
    await within('all 60 on the other host', 5000, () => Array.from({ length: 60 }, (_, i) => index.byName(`vm${300 + i}`)).every(Boolean));
    const elapsed = performance.now() - started;
    const count = catchUps - before;
    // Catch-ups start at least 20 ms apart: never more than one per 20 ms, however many commits.
    assert.ok(count <= Math.ceil(elapsed / 20) + 1, `${count} catch-ups in ${Math.round(elapsed)} ms`);
    assert.ok(count < 60, `${count} catch-ups for 60 commits`);
  } finally {
    await feed.close();
  }
});

test('a domain deleted from the db.database behind this host\'s back is registered again as a new instance, with an address', async () => {
  const [a] = hosts as [PgStore];
  const first = ok((await a.registerAll([reg(400, { mac: '52:54:00:00:04:00' })], lowestFree))[0]);
  // Removed without telling any host (as a restored backup would): host a's copy still holds it.
  const admin = new pg.Client({ connectionString: db.server.url(db.database) });
  await admin.connect();
  try {
    await admin.query('DELETE FROM instances WHERE uuid = $1', [first.instance.uuid]);
    assert.ok(a.byUuid(first.instance.uuid), 'still in host a\'s copy');
    const again = ok((await a.registerAll([reg(400, { mac: '52:54:00:00:04:00' })], lowestFree))[0]);
    assert.equal(again.created, true);
    assert.ok(again.instance.ipv4);
    const stored = await admin.query<{ ipv4: string }>('SELECT ipv4 FROM instances WHERE uuid = $1', [first.instance.uuid]);
    assert.equal(stored.rows[0]?.ipv4, again.instance.ipv4);
  } finally {
    await admin.end();
  }
});

test('an upload whose addresses other writes keep claiming gets a clear 503 after its tries, with nothing stored, and goes through once they are free', async () => {
  const [a] = hosts as [PgStore];
  // Another session holds the claims on 10.9.0.77 to .86 (as hosts in the middle of registering
  // them would), and this host's allocator chooses among them: every try loses the race.
  const claimed = Array.from({ length: 10 }, (_, i) => `10.9.0.${77 + i}`);
  const claimer = new pg.Client({ connectionString: db.server.url(db.database) });
  await claimer.connect();
  const crowded: Allocate = (isUsed) => claimed.find((ip) => !isUsed(ip)) ?? null;
  try {
    for (const ip of claimed) await claimer.query('SELECT pg_advisory_lock($1, hashtext($2::text))', [ADDRESS_LOCKS, ip]);
    const [r] = await a.registerAll([reg(500, { mac: '52:54:00:00:05:00' })], crowded);
    assert.ok(r instanceof MdsError, String(r));
    assert.equal(r.code, 'STORE_UNAVAILABLE');
    assert.match(r.message, /busy.*9 times in a row.*nothing was stored, try again/);
    const rows = await claimer.query('SELECT 1 FROM instances WHERE name = $1', ['vm500']);
    assert.equal(rows.rowCount, 0);
    await claimer.query('SELECT pg_advisory_unlock_all()');
    const again = ok((await a.registerAll([reg(500, { mac: '52:54:00:00:05:00' })], crowded))[0]);
    assert.equal(again.instance.ipv4, '10.9.0.77');
  } finally {
    await claimer.end();
  }
});
