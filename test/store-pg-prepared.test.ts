// The PostgreSQL store prepares its hot statements once per connection (src/store/pgPrepared.ts).
// A prepared statement that reads a table with `*` is refused by the server once the table's
// columns change, which a newer host's migration does while the older hosts still run: uploads and
// catch-ups must go on through that, on every host, with nothing lost.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { sqlPrepared } from '../src/store/pgPrepared.js';
import type { PgStore } from '../src/store/postgres.js';
import type { Allocate, Registration } from '../src/store/store.js';
import { hostsOnOneDatabase } from './postgres.js';

const db = hostsOnOneDatabase(['a', 'b']);
const hosts = db.hosts;

const reg = (i: number, extra: Partial<Registration> = {}): Registration => ({
  name: `vm${i}`, uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, mac: `52:54:00:00:02:${String(i % 100).padStart(2, '0')}`,
  metadata: {}, arch: null, location: 'rack1', host: 'host-a', ...extra,
});

let next = 1;
const free: Allocate = (isUsed) => {
  while (isUsed(`10.8.0.${next}`)) next++;
  return `10.8.0.${next}`;
};

async function register(on: PgStore, r: Registration): Promise<void> {
  const [out] = await on.registerAll([r], free);
  if (!out || out instanceof Error) assert.fail(`registering ${r.name}: ${String(out)}`);
}

async function within(what: string, ms: number, check: () => boolean): Promise<void> {
  const started = Date.now();
  while (!check()) {
    assert.ok(Date.now() - started < ms, `${what} within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

test("a newer host's migration that adds columns while this one runs: uploads, updates and catch-ups go on, on every host", async () => {
  const [a, b] = hosts as [PgStore, PgStore];
  // More than five runs of each statement on each host: the server has settled on its cached plans.
  for (let i = 1; i <= 8; i++) await register(i % 2 ? a : b, reg(i));
  for (let i = 1; i <= 8; i++) await register(i % 2 ? b : a, reg(i, { metadata: { round: '1' } }));
  await a.caughtUp();
  await b.caughtUp();
  assert.equal(b.byName('vm8')?.metadata['round'], '1');

  await db.server.sql('ALTER TABLE instances ADD COLUMN later text; ALTER TABLE boots ADD COLUMN later text; ALTER TABLE passwords ADD COLUMN later text', [], db.database);

  await register(a, reg(20));
  await register(b, reg(21));
  await register(a, reg(3, { metadata: { round: '2' } }));
  await register(b, reg(4, { metadata: { round: '2' } }));
  await within('host b reads what host a wrote after the migration', 3000, () => b.byName('vm20') !== undefined && b.byName('vm3')?.metadata['round'] === '2');
  await within('host a reads what host b wrote after the migration', 3000, () => a.byName('vm21') !== undefined && a.byName('vm4')?.metadata['round'] === '2');
  const rows = await db.server.sql<{ n: string }>('SELECT count(*) AS n FROM instances', [], db.database);
  assert.equal(Number(rows[0]?.n), 10);
  assert.equal(a.count(), 10);
  assert.equal(b.count(), 10);
});

test('a statement its session prepared already (by a try whose answer came too late) is used, not refused', async () => {
  const stmt = sqlPrepared('mds_test_late', 'SELECT counter FROM cluster');
  const c = new pg.Client({ connectionString: db.server.url(db.database) });
  await c.connect();
  try {
    await c.query('PREPARE mds_test_late AS SELECT counter FROM cluster');
    await stmt.ensure(c);
    const r = await c.query<{ counter: string }>(stmt.execute);
    assert.ok(Number(r.rows[0]?.counter) > 0);
  } finally {
    await c.end();
  }
});
