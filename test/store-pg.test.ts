// The PostgreSQL instance store: the store contract on a real PostgreSQL 15 (test/postgres.ts),
// and what only a shared store does: several hosts (several store handles on one database)
// racing for addresses, seeing each other's changes, losing and regaining the database.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PgStore } from '../src/store/postgres.js';
import type { Allocate, BootEvent, Registration } from '../src/store/store.js';
import { cutWhileWaitingForCounter, PgServer } from './postgres.js';
import { storeContract } from './store-contract.js';

let server: PgServer | null = null;
const pgServer = async (): Promise<PgServer> => (server ??= await PgServer.start());
after(() => server?.destroySync());

async function openOn(database: string, host = 'host-a'): Promise<PgStore> {
  return PgStore.open({ url: (await pgServer()).url(database), password: null, host });
}

/** One database for the contract's tests, emptied after each: creating one per test takes most of a second. */
let contractDb: string | null = null;

storeContract('PostgreSQL', async () => {
  const database = (contractDb ??= await (await pgServer()).createDatabase());
  const opened = [await openOn(database)];
  const first = opened[0] as PgStore;
  return {
    store: first,
    async reopen() {
      // Another host sees the bookkeeping writes once they are made, which this one does in the background.
      await first.settled();
      const s = await openOn(database, 'host-b');
      opened.push(s);
      return s;
    },
    async caughtUp(other) {
      await (other as PgStore).caughtUp();
    },
    async dispose() {
      for (const s of opened) await s.close();
      await (await pgServer()).sql('TRUNCATE instances, tombstones, meta, locations, boots, boot_events, passwords; UPDATE cluster SET counter = 0', [], database);
    },
  };
});

const reg = (i: number, host = 'host-a'): Registration => ({
  name: `vm${i}`, uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  mac: `52:54:00:00:${String(Math.floor(i / 100) % 100).padStart(2, '0')}:${String(i % 100).padStart(2, '0')}`,
  metadata: {}, arch: null, location: 'rack1', host,
});

/** Waits until `check` holds, failing after `ms`. */
async function within(what: string, ms: number, check: () => boolean): Promise<void> {
  const started = Date.now();
  while (!check()) {
    assert.ok(Date.now() - started < ms, `${what} within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

const event = (name: string, received: number): BootEvent => ({ received, kind: 'start', name, result: null, description: `running ${name}` });

/** A pool of `size` addresses, each allocator picking at random as the real one does. */
function randomPool(size: number): Allocate {
  return (isUsed) => {
    const free: string[] = [];
    for (let i = 1; i <= size; i++) if (!isUsed(`10.9.0.${i}`)) free.push(`10.9.0.${i}`);
    return free[Math.floor(Math.random() * free.length)] ?? null;
  };
}

describe('several hosts on one PostgreSQL store', () => {
  const hosts: PgStore[] = [];
  let database = '';
  before(async () => {
    database = await (await pgServer()).createDatabase();
    // All three start at once: the schema is created by one of them, under the advisory lock.
    hosts.push(...(await Promise.all(['a', 'b', 'c'].map((h) => openOn(database, `host-${h}`)))));
  });
  after(async () => {
    for (const h of hosts) await h.close();
  });

  test('three hosts registering at the same moment never hand out one address twice', async () => {
    const groups = [0, 1, 2].map((h) => Array.from({ length: 40 }, (_, i) => reg(h * 100 + i, `host-${'abc'[h] ?? ''}`)));
    const outcomes = (await Promise.all(hosts.map((s, h) => s.registerAll(groups[h] as Registration[], randomPool(200))))).flat();
    for (const o of outcomes) assert.ok(!(o instanceof Error), String(o));
    const rows = await (await pgServer()).sql<{ ipv4: string }>('SELECT ipv4 FROM instances', [], database);
    assert.equal(rows.length, 120);
    assert.equal(new Set(rows.map((r) => r.ipv4)).size, 120, 'every address is distinct in the database');
  });

  test("a change made on one host is served by the others within a second, with the host that made it", async () => {
    const started = Date.now();
    const r = await hosts[0]?.registerAll([reg(900)], randomPool(250));
    const made = r?.[0];
    assert.ok(made && !(made instanceof Error));
    for (const h of hosts.slice(1)) {
      while (h.byUuid(reg(900).uuid)?.ipv4 !== made.instance.ipv4) {
        assert.ok(Date.now() - started < 1000, 'seen within one second');
        await new Promise((res) => setTimeout(res, 5));
      }
    }
    await hosts[1]?.delete('vm900');
    while (hosts[2]?.byName('vm900') !== undefined) {
      assert.ok(Date.now() - started < 2000, 'a deletion is seen too');
      await new Promise((res) => setTimeout(res, 5));
    }
    assert.equal(hosts[1]?.byName('vm0')?.host, 'host-a');
  });

  test('a host whose connection is cut reconnects by itself and catches up on what it missed meanwhile', async () => {
    const pg = await pgServer();
    const cut = await pg.sql<{ ok: boolean }>(`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'mdserver host-b feed'`, [], database);
    assert.deepEqual(cut, [{ ok: true }]);
    // Registered while host-b listens to nothing: no notification reaches it, only its catch-up.
    const r = (await hosts[0]?.registerAll([reg(950)], randomPool(250)))?.[0];
    assert.ok(r && !(r instanceof Error));
    const started = Date.now();
    while (hosts[1]?.byUuid(reg(950).uuid)?.ipv4 !== r.instance.ipv4) {
      assert.ok(Date.now() - started < 3000, 'caught up within 3 s');
      await new Promise((res) => setTimeout(res, 10));
    }
    assert.equal(hosts[1]?.reachability().ok, true);
  });

  test("a password set through one host is served by the others within a second, migrates with its VM, and is gone everywhere once acknowledged", async () => {
    const [a, b, c] = hosts as [PgStore, PgStore, PgStore];
    const r = (await a.registerAll([reg(960)], randomPool(250)))[0];
    assert.ok(r && !(r instanceof Error));
    assert.equal(await a.setPassword('vm960', 'Zq7pass', Date.now() + 60_000), true);
    await within('every host serving it', 1000, () => b.password('vm960', Date.now()) === 'Zq7pass' && c.password('vm960', Date.now()) === 'Zq7pass');
    // Migrated to host-c (registered there), and defined again under a new uuid: the password stays pending.
    const moved = (await c.registerAll([reg(960, 'host-c')], () => null))[0];
    assert.ok(moved && !(moved instanceof Error) && !moved.created);
    await c.rekey('vm960', '00000000-0000-4000-8000-00000000a960');
    await within('host-a seeing it under the new uuid', 1000, () => a.byName('vm960')?.uuid === '00000000-0000-4000-8000-00000000a960');
    assert.equal(a.password('vm960', Date.now()), 'Zq7pass');
    // The VM acknowledges it to the password server of the host it runs on now.
    assert.equal(await c.deletePassword('vm960'), true);
    await within('every host dropping it', 1000, () => hosts.every((h) => h.password('vm960', Date.now()) === undefined));
    assert.equal(await b.deletePassword('vm960'), false, 'acknowledged once');
  });

  test("a boot begun on one host, and the events it reports there, show on every other host; a deletion removes them everywhere", async () => {
    const [a, b, c] = hosts as [PgStore, PgStore, PgStore];
    const r = (await a.registerAll([reg(970)], randomPool(250)))[0];
    assert.ok(r && !(r instanceof Error));
    const uuid = reg(970).uuid;
    a.beginBoot(uuid, 1000, null);
    a.markFirstRequest(uuid, 1100);
    assert.deepEqual(a.bootRecord(uuid), { boot: 1, began: 1000, firstRequest: 1100, events: [] }, 'read at once where it was made');
    await a.appendBootEvents(new Map([[uuid, [event('init-local', 1200), event('init-network', 1300)]]]), 200);
    const expected = { boot: 1, began: 1000, firstRequest: 1100, events: [event('init-local', 1200), event('init-network', 1300)] };
    await within('every host showing the boot', 1000, () => [b, c].every((h) => JSON.stringify(h.bootRecord(uuid)) === JSON.stringify(expected)));
    // The VM, migrated to host-b, reports on from there; host-b trims to the last 2.
    await b.appendBootEvents(new Map([[uuid, [event('modules-final', 1400)]]]), 2);
    await within('host-c showing the last two', 1000, () => c.bootRecord(uuid)?.events.map((e) => e.name).join() === 'init-network,modules-final');
    await a.caughtUp();
    assert.deepEqual(a.bootRecord(uuid)?.events.map((e) => e.name), ['init-network', 'modules-final']);
    await c.delete('vm970');
    await within('every host dropping the boot', 1000, () => hosts.every((h) => h.bootRecord(uuid) === undefined));
    const rows = await (await pgServer()).sql<{ n: string }>('SELECT count(*) AS n FROM boot_events', [], database);
    assert.deepEqual(rows, [{ n: '0' }]);
  });

  test('re-registering a domain on another host keeps its address and records the new host', async () => {
    const before = hosts[0]?.byName('vm1');
    const moved = await hosts[2]?.registerAll([reg(1, 'host-c')], () => assert.fail('a known domain gets no new address'));
    const r = moved?.[0];
    assert.ok(r && !(r instanceof Error));
    assert.deepEqual([r.created, r.changed, r.instance.ipv4, r.instance.firstSeen], [false, true, before?.ipv4, before?.firstSeen]);
    const host = await (await pgServer()).sql<{ host: string }>('SELECT host FROM instances WHERE name = $1', ['vm1'], database);
    assert.deepEqual(host, [{ host: 'host-c' }]);
    await hosts[0]?.caughtUp();
    assert.equal(hosts[0]?.byName('vm1')?.host, 'host-c', 'the host that registered it before sees it moved');
  });
});

test('a boot written in the background while the database refuses connections is logged and counted, never thrown; the store catches up when it is back', async () => {
  const pg = await pgServer();
  const database = await pg.createDatabase();
  const store = await openOn(database, 'host-z');
  const faults: string[] = [];
  store.onBackgroundFault((operation) => faults.push(operation));
  try {
    const r = (await store.registerAll([reg(1)], randomPool(10)))[0];
    assert.ok(r && !(r instanceof Error));
    await pg.sql(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`);
    await pg.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, [database]);
    await within('the store knowing it is down', 3000, () => !store.reachability().ok);
    store.beginBoot(reg(1).uuid, 1000, 1000);
    store.markFirstRequest(reg(1).uuid, 1000);
    await store.settled();
    assert.deepEqual(faults, ['beginBoot', 'markFirstRequest']);
    assert.equal(store.bootRecord(reg(1).uuid), undefined, 'what was not stored is not shown');
    await assert.rejects(store.appendBootEvents(new Map([[reg(1).uuid, [event('x', 1)]]]), 200), /STORE_UNAVAILABLE|unreachable/);
    await pg.sql(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
    await within('the store back', 10_000, () => store.reachability().ok);
    store.beginBoot(reg(1).uuid, 2000, null);
    await store.settled();
    assert.deepEqual(store.bootRecord(reg(1).uuid), { boot: 1, began: 2000, firstRequest: null, events: [] });
  } finally {
    await pg.sql(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
    await store.close();
  }
});

test("a write whose connection is cut in the middle of its transaction (the database stopped) fails as STORE_UNAVAILABLE and crashes nothing", async () => {
  const server = await pgServer();
  const database = await server.createDatabase();
  const store = await openOn(database, 'host-y');
  const r = (await store.registerAll([reg(2)], randomPool(10)))[0];
  assert.ok(r && !(r instanceof Error));
  try {
    // The write waits inside its transaction for the change counter, and its connection is cut there.
    const failed = await cutWhileWaitingForCounter(server, database, store, 'host-y', () => store.setPassword('vm2', 'Zq7pass', Date.now() + 60_000));
    assert.match(String(failed), /STORE_UNAVAILABLE|unreachable/);
    // The pool opens a new connection for the next write.
    assert.equal(await store.setPassword('vm2', 'Zq7pass', Date.now() + 60_000), true);
  } finally {
    await store.close();
  }
});
