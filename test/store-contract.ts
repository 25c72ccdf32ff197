// The instance store's contract as tests: what every backend behind the Store interface must do.
// A backend runs them with storeContract(name, backend); test/store.test.ts runs them on SQLite.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { isMdsError } from '../src/errors.js';
import type { Allocate, BootEvent, HostRecord, Instance, RegisterOutcome, RegisterResult, Registration, Store } from '../src/store/store.js';

/** Fresh, empty storage for one test: the store on it, and a second handle on the same storage. */
export interface Storage {
  readonly store: Store;
  /** Another store on the same storage, as after a restart (the caller closes it). */
  reopen(): Promise<Store>;
  /**
   * Waits until `other` (from reopen) has every change made through `store` so far: a networked
   * backend's other handle follows a moment later, as another host does. Absent: at once.
   */
  caughtUp?(other: Store): Promise<void>;
  /** Closes what it opened and removes the storage. */
  dispose(): Promise<void>;
}

export type Backend = () => Promise<Storage>;

const WEB: Registration = {
  name: 'web 1', uuid: 'becb25c7-b581-4ecd-b60e-a9942ad18879', mac: '52:54:00:3a:cf:41',
  metadata: { 'instance-type': 'm1.small', role: 'web' }, arch: 'x86_64', location: 'rack1', host: 'host-a',
};
const DB: Registration = {
  name: 'db', uuid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mac: '52:54:00:11:22:33',
  metadata: {}, arch: null, location: 'rack1',
};
const CACHE: Registration = {
  name: 'cache', uuid: '3f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mac: '52:54:00:11:22:44',
  metadata: {}, arch: 'aarch64', location: 'rack2',
};

/** An allocator that hands out the first of `addresses` not in use. */
function from(...addresses: string[]): Allocate {
  return (isUsed) => addresses.find((a) => !isUsed(a)) ?? null;
}

const POOL = from('10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.0.13');

function ok(o: RegisterOutcome | undefined): RegisterResult {
  if (o === undefined) throw new Error('no outcome');
  if (o instanceof Error) throw o;
  return o;
}

function refused(o: RegisterOutcome | undefined, code: string): void {
  assert.ok(o instanceof Error, `expected ${code}, got a stored record`);
  assert.ok(isMdsError(o), `expected ${code}, got ${o.message}`);
  assert.equal(o.code, code);
}

export function storeContract(name: string, backend: Backend): void {
  describe(`the ${name} instance store`, () => {
    let s: Storage;
    let store: Store;
    beforeEach(async () => {
      s = await backend();
      store = s.store;
    });
    afterEach(async () => {
      await s.dispose();
    });
    const register = async (reg: Registration, allocate = POOL): Promise<RegisterResult> =>
      ok((await store.registerAll([reg], allocate))[0]);

    test('a new domain is stored with the address allocated for it and a DNS-safe host name', async () => {
      const r = await register(WEB);
      assert.equal(r.created, true);
      assert.equal(r.changed, true);
      const expected = {
        name: 'web 1', hostName: 'web-1', uuid: WEB.uuid, mac: WEB.mac, ipv4: '10.0.0.10', ipv6: null,
        location: 'rack1', metadata: WEB.metadata, arch: 'x86_64', nwfilter: null, host: 'host-a',
      };
      assert.deepEqual({ ...r.instance, firstSeen: 0, lastUpdate: 0 }, { ...expected, firstSeen: 0, lastUpdate: 0 });
      assert.ok(Math.abs(r.instance.firstSeen - Date.now()) < 60_000, 'first seen now, in milliseconds');
      assert.deepEqual(store.byName('web 1'), r.instance);
      assert.deepEqual(store.byIPv4('10.0.0.10'), r.instance);
    });

    test('registering the same domain again keeps its record and says nothing changed', async () => {
      const first = await register(WEB);
      const generation = store.generation;
      const again = await register(WEB, () => assert.fail('no address is allocated for a known domain'));
      assert.equal(again.created, false);
      assert.equal(again.changed, false);
      assert.equal(again.instance.ipv4, first.instance.ipv4);
      assert.equal(again.instance.firstSeen, first.instance.firstSeen);
      assert.equal(store.generation, generation, 'a repeat invalidates no cache');
      assert.equal(store.count(), 1);
    });

    test('a changed domain keeps its address and first sighting and says it changed', async () => {
      const first = await register(WEB);
      const before = store.generation;
      const r = await register({ ...WEB, metadata: { role: 'db' }, arch: 'aarch64', location: 'rack9' });
      assert.deepEqual([r.created, r.changed], [false, true]);
      assert.equal(r.instance.ipv4, first.instance.ipv4);
      assert.equal(r.instance.firstSeen, first.instance.firstSeen);
      assert.deepEqual(store.byName('web 1')?.metadata, { role: 'db' });
      assert.equal(store.byName('web 1')?.arch, 'aarch64');
      assert.equal(store.byName('web 1')?.location, 'rack9');
      assert.ok(store.generation > before);
    });

    test("the interface's nwfilter is kept, and adding, changing or removing it is a change", async () => {
      assert.equal((await register(WEB)).instance.nwfilter, null);
      for (const nwfilter of ['clean-traffic', 'my-filter', null]) {
        const r = await register({ ...WEB, nwfilter });
        assert.deepEqual([r.changed, r.instance.nwfilter, store.byName('web 1')?.nwfilter], [true, nwfilter, nwfilter]);
      }
      assert.equal((await register({ ...WEB, nwfilter: null })).changed, false);
      const reopened = await s.reopen();
      await register({ ...WEB, nwfilter: 'clean-traffic' });
      await s.caughtUp?.(reopened);
      assert.equal(reopened.byName('web 1')?.nwfilter, 'clean-traffic', 'stored, not only held in memory');
      reopened.close();
    });

    test('a record names the host that last registered it: the same domain registered on another host keeps its address and moves', async () => {
      const first = await register(WEB);
      const moved = await register({ ...WEB, host: 'host-b' }, () => assert.fail('no address is allocated for a known domain'));
      assert.deepEqual([moved.created, moved.changed, moved.instance.host, moved.instance.ipv4, moved.instance.firstSeen],
        [false, true, 'host-b', first.instance.ipv4, first.instance.firstSeen]);
      assert.equal(store.byUuid(WEB.uuid)?.host, 'host-b');
      assert.equal((await register({ ...DB })).instance.host, '', 'a registration that names no host');
    });

    test('a known uuid registered by another host under another MAC is a CONFLICT, not a migration; the record stays as it was', async () => {
      const first = await register(WEB);
      const other = { ...WEB, mac: '52:54:00:99:99:98', host: 'host-b' };
      const [taken] = await store.registerAll([other], POOL);
      refused(taken, 'CONFLICT');
      assert.equal((taken as Error).message,
        `uuid ${WEB.uuid} of domain web 1 (MAC ${other.mac}) is registered by host host-a as web 1 with MAC ${WEB.mac} (address ${first.instance.ipv4}), ` +
        'which is left as it is: a migration keeps the MAC; if that domain really moved with a new MAC, register the new MAC on host-a first, ' +
        'or delete its record (mdserver instances delete web 1)');
      assert.deepEqual([store.byUuid(WEB.uuid)?.host, store.byUuid(WEB.uuid)?.mac], ['host-a', WEB.mac]);
      // Its own host may change the MAC; then the domain moves with it.
      assert.equal((await register({ ...WEB, mac: other.mac })).changed, true);
      assert.equal((await register(other)).instance.ipv4, first.instance.ipv4);
    });

    test('a known uuid under a new name is renamed, keeping its address', async () => {
      const first = await register(WEB);
      const renamed = await register({ ...WEB, name: 'web-renamed' });
      assert.deepEqual([renamed.created, renamed.changed, renamed.instance.ipv4], [false, true, first.instance.ipv4]);
      assert.equal(store.byName('web 1'), undefined);
      assert.equal(store.count(), 1);
    });

    test('a known name under another uuid is a CONFLICT naming both, and the old record stays as it was', async () => {
      const first = await register(WEB);
      const generation = store.generation;
      const newcomer = { ...WEB, uuid: '11111111-2222-3333-4444-555555555555', mac: '52:54:00:99:99:99' };
      const [taken] = await store.registerAll([newcomer], POOL);
      refused(taken, 'CONFLICT');
      assert.equal(
        (taken as Error).message,
        `name web 1 of domain ${newcomer.uuid} already belongs to the instance of domain ${WEB.uuid} (address 10.0.0.10), which is left as it is: ` +
          `if this is that VM defined again, move its record to the new uuid (mdserver instances rekey web 1 --uuid ${newcomer.uuid}); ` +
          'otherwise delete the old record first (mdserver instances delete web 1)',
      );
      assert.deepEqual(store.byName('web 1'), first.instance);
      assert.equal(store.generation, generation);
    });

    test('rekey moves a record to a new uuid, keeping its address, MAC and first sighting', async () => {
      const first = await register(WEB);
      const before = store.generation;
      const ec2 = 'ec2b7c1e-5d3a-4f62-9a0e-3c41d2b8e917';
      const moved = await store.rekey('web 1', ec2);
      assert.equal(moved?.previousUuid, WEB.uuid);
      assert.deepEqual({ ...moved?.instance, lastUpdate: 0 }, { ...first.instance, uuid: ec2, lastUpdate: 0 });
      assert.ok(store.generation > before);
      assert.deepEqual(store.byName('web 1'), moved?.instance);
      // The domain defined again under that uuid is now the same record.
      const again = await register({ ...WEB, uuid: ec2 }, () => assert.fail('no new address'));
      assert.deepEqual([again.created, again.instance.ipv4, again.instance.firstSeen], [false, '10.0.0.10', first.instance.firstSeen]);
      assert.equal(store.count(), 1);
    });

    test('rekey of an unknown name finds nothing; to its own uuid changes nothing; to a uuid in use is a CONFLICT', async () => {
      await register(WEB);
      await register(DB);
      assert.equal(await store.rekey('nobody', CACHE.uuid), undefined);
      const generation = store.generation;
      assert.equal((await store.rekey('web 1', WEB.uuid))?.previousUuid, WEB.uuid);
      assert.equal(store.generation, generation);
      await assert.rejects(store.rekey('web 1', DB.uuid), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'CONFLICT');
        assert.equal(e.message, `uuid ${DB.uuid} already belongs to the instance db`);
        return true;
      });
      assert.equal(store.byName('web 1')?.uuid, WEB.uuid);
    });

    test('rekey keeps host names unique: a name made only of symbols takes its host name from the uuid', async () => {
      const symbols = await register({ ...CACHE, name: '***' });
      assert.equal(symbols.instance.hostName, 'instance-3f1e2d3c');
      await register({ ...DB, name: 'instance-ec2aaaaa' });
      await assert.rejects(store.rekey('***', 'ec2aaaaa-0000-4000-8000-000000000000'), /host name instance-ec2aaaaa of domain \*\*\* .* is already the host name of domain instance-ec2aaaaa/);
      assert.equal(store.byName('***')?.uuid, CACHE.uuid);
    });

    test("another domain's MAC, or renaming onto another domain's name, is a CONFLICT that stores nothing", async () => {
      await register(WEB);
      await register(DB);
      const [macTaken, nameTaken] = await store.registerAll([{ ...CACHE, mac: WEB.mac }, { ...DB, name: 'web 1' }], POOL);
      refused(macTaken, 'CONFLICT');
      assert.match((macTaken as Error).message, /52:54:00:3a:cf:41.*web 1/);
      refused(nameTaken, 'CONFLICT');
      assert.equal(store.count(), 2);
      assert.equal(store.byName('cache'), undefined);
      assert.equal(store.byName('db')?.uuid, DB.uuid);
    });

    test('a host name another instance has, in any case or spelling, is a CONFLICT naming both', async () => {
      await register({ ...WEB, name: 'VICTIM' });
      const [underscore, lower, renamed] = await store.registerAll(
        [{ ...DB, name: 'victim_' }, { ...CACHE, name: 'victim' }, { ...WEB, name: 'Victim!' }],
        POOL,
      );
      refused(underscore, 'CONFLICT');
      assert.equal(
        (underscore as Error).message,
        `host name victim of domain victim_ (${DB.uuid}) is already the host name of domain VICTIM (${WEB.uuid}): ` +
          'DNS names ignore case, and characters other than letters, digits and "-" become "-"',
      );
      refused(lower, 'CONFLICT');
      // The holder itself may change its spelling: the host name stays its own.
      assert.equal(ok(renamed).instance.hostName, 'Victim');
      assert.deepEqual(store.all().map((i) => i.name), ['Victim!']);
    });

    test('in one group, the first of two registrations with the same host name wins', async () => {
      const [web, other] = await store.registerAll([{ ...WEB, name: 'web.1' }, { ...DB, name: 'WEB 1' }], POOL);
      assert.equal(ok(web).instance.hostName, 'web-1');
      refused(other, 'CONFLICT');
      assert.equal(store.count(), 1);
    });

    test('a full pool is POOL_EXHAUSTED and stores nothing', async () => {
      await register(WEB, from('10.0.0.10'));
      const [full] = await store.registerAll([DB], from('10.0.0.10'));
      refused(full, 'POOL_EXHAUSTED');
      assert.equal(store.count(), 1);
    });

    test('the allocator sees every address in use, including those given earlier in the same group', async () => {
      await register(WEB, from('10.0.0.12'));
      const seen: string[] = [];
      const probing: Allocate = (isUsed) => {
        const used = ['10.0.0.10', '10.0.0.11', '10.0.0.12'].filter(isUsed);
        seen.push(used.join(' '));
        return POOL(isUsed);
      };
      const outcomes = await store.registerAll([DB, CACHE], probing);
      assert.deepEqual(outcomes.map((o) => ok(o).instance.ipv4), ['10.0.0.10', '10.0.0.11']);
      assert.deepEqual(seen, ['10.0.0.12', '10.0.0.10 10.0.0.12']);
    });

    test('an address handed out twice by a faulty allocator fails that registration alone', async () => {
      await register(WEB, from('10.0.0.10'));
      let calls = 0;
      const [twice, fine] = await store.registerAll([DB, CACHE], (isUsed) => (calls++ === 0 ? '10.0.0.10' : POOL(isUsed)));
      assert.ok(twice instanceof Error, 'two instances never share an address');
      assert.equal(ok(fine).instance.name, 'cache');
      assert.deepEqual(store.all().map((i) => i.ipv4), ['10.0.0.11', '10.0.0.10']);
    });

    test('in a group each registration stands alone and the outcomes keep the order of the group', async () => {
      const outcomes = await store.registerAll([WEB, { ...DB, mac: WEB.mac }, CACHE, { ...CACHE, uuid: DB.uuid, name: 'other' }], POOL);
      assert.equal(ok(outcomes[0]).instance.name, 'web 1');
      refused(outcomes[1], 'CONFLICT');
      assert.equal(ok(outcomes[2]).instance.name, 'cache');
      refused(outcomes[3], 'CONFLICT');
      assert.deepEqual(store.all().map((i) => i.name), ['cache', 'web 1']);
    });

    test('lookups: by address, name, uuid and MAC, all and the host entries in name order, the count', async () => {
      await store.registerAll([WEB, DB, CACHE], POOL);
      assert.deepEqual(store.all().map((i) => [i.name, i.ipv4]), [['cache', '10.0.0.12'], ['db', '10.0.0.11'], ['web 1', '10.0.0.10']]);
      // The fields a HostRecord promises (a backend may hand out its full records, read only).
      const asRecord = (h: HostRecord): HostRecord => ({ hostName: h.hostName, mac: h.mac, ipv4: h.ipv4, ipv6: h.ipv6, name: h.name, uuid: h.uuid, firstSeen: h.firstSeen, host: h.host });
      assert.deepEqual(store.hostEntries().map((h) => ({ ...asRecord(h), firstSeen: h.firstSeen === store.byName(h.name)?.firstSeen })), [
        { hostName: 'cache', mac: CACHE.mac, ipv4: '10.0.0.12', ipv6: null, name: 'cache', uuid: CACHE.uuid, firstSeen: true, host: '' },
        { hostName: 'db', mac: DB.mac, ipv4: '10.0.0.11', ipv6: null, name: 'db', uuid: DB.uuid, firstSeen: true, host: '' },
        { hostName: 'web-1', mac: WEB.mac, ipv4: '10.0.0.10', ipv6: null, name: 'web 1', uuid: WEB.uuid, firstSeen: true, host: 'host-a' },
      ]);
      assert.equal(store.count(), 3);
      assert.equal(store.byIPv4('10.0.0.11')?.name, 'db');
      assert.equal(store.byIPv4('10.0.0.99'), undefined);
      assert.equal(store.byName('nobody'), undefined);
      assert.equal(store.byUuid(DB.uuid)?.name, 'db');
      assert.equal(store.byMac(CACHE.mac)?.name, 'cache');
      assert.equal(store.byUuid('db'), undefined);
      assert.equal(store.byMac(DB.uuid), undefined);
    });

    test('delete returns the record it removed and frees its name, MAC and address', async () => {
      const web = await register(WEB);
      const before = store.generation;
      const gone = await store.delete('web 1');
      assert.deepEqual(gone, web.instance);
      assert.ok(store.generation > before);
      assert.equal(store.byName('web 1'), undefined);
      assert.equal(store.byIPv4('10.0.0.10'), undefined);
      assert.equal(await store.delete('web 1'), undefined, 'deleting what is gone finds nothing');
      const back = await register({ ...DB, name: 'web 1', mac: WEB.mac });
      assert.deepEqual([back.created, back.instance.ipv4], [true, '10.0.0.10']);
    });

    test('what one handle stored, another opened on the same storage reads', async () => {
      const web = await register(WEB);
      store.setMeta('imported_from', '/var/lib/mdserver/db_file.json');
      store.touchLocation('rack1', 'host1.example.com', '1.0.0');
      const other = await s.reopen();
      try {
        assert.deepEqual(other.byName('web 1'), web.instance);
        assert.deepEqual(other.all().map((i: Instance) => i.name), ['web 1']);
        assert.equal(other.getMeta('imported_from'), '/var/lib/mdserver/db_file.json');
        assert.equal(other.getMeta('nothing'), undefined);
      } finally {
        other.close();
      }
    });

    test('a password is kept for its instance until it expires, replaced by a newer one, and deleted once', async () => {
      await register(WEB);
      await register(DB);
      const now = Date.now();
      assert.equal(await store.setPassword('nobody', 'x', now + 1000), false);
      assert.equal(await store.setPassword('web 1', 'first', now + 60_000), true);
      assert.equal(await store.setPassword('web 1', 'second', now + 60_000), true);
      assert.equal(store.password('web 1', now), 'second');
      assert.equal(store.password('db', now), undefined, 'another instance never reads it');
      assert.equal(store.password('web 1', now + 60_000), undefined, 'expired at its expiry time');
      assert.equal(await store.deletePassword('web 1'), true);
      assert.equal(await store.deletePassword('web 1'), false);
      assert.equal(store.password('web 1', now), undefined);
    });

    test('a password follows its record through a rename and a rekey, and goes when the record is deleted', async () => {
      const now = Date.now();
      await register(WEB);
      await store.setPassword('web 1', 'pw', now + 60_000);
      await register({ ...WEB, name: 'web 2' });
      assert.equal(store.password('web 2', now), 'pw');
      await store.rekey('web 2', '11111111-2222-3333-4444-555555555555');
      assert.equal(store.password('web 2', now), 'pw');
      await store.delete('web 2');
      await register(WEB);
      assert.equal(store.password('web 1', now), undefined, 'a new record under the old name starts without one');
    });

    test('purging deletes the expired passwords only, and what is stored survives a reopen', async () => {
      const now = Date.now();
      await register(WEB);
      await register(DB);
      await store.setPassword('web 1', 'old', now - 1);
      await store.setPassword('db', 'fresh', now + 60_000);
      assert.equal(await store.purgePasswords(now), 1);
      assert.equal(await store.deletePassword('web 1'), false);
      const other = await s.reopen();
      try {
        assert.equal(other.password('db', now), 'fresh');
      } finally {
        other.close();
      }
    });

    test('meta values are replaced, not added', async () => {
      assert.equal(store.getMeta('k'), undefined);
      store.setMeta('k', 'one');
      store.setMeta('k', 'two');
      assert.equal(store.getMeta('k'), 'two');
    });

    bootContract(() => ({ s, store }), register);
  });
}

function ev(name: string, kind: BootEvent['kind'] = 'start', result: string | null = null, received = 1000): BootEvent {
  return { received, kind, name, result, description: `running ${name}` };
}

/** The provisioning part of the contract: each instance's current boot and its events. */
function bootContract(get: () => { s: Storage; store: Store }, register: (r: Registration) => Promise<RegisterResult>): void {
  test('a boot keeps its first request and its events, in order, across a restart', async () => {
    const { s, store } = get();
    await register(WEB);
    assert.equal(store.bootRecord(WEB.uuid), undefined, 'no boot before one is begun');
    store.beginBoot(WEB.uuid, 500, null);
    store.markFirstRequest(WEB.uuid, 600);
    store.markFirstRequest(WEB.uuid, 700);
    await store.appendBootEvents(new Map([[WEB.uuid, [ev('init-network'), ev('init-network', 'finish', 'SUCCESS', 1001)]]]), 200);
    const other = await s.reopen();
    try {
      assert.deepEqual(other.bootRecord(WEB.uuid), {
        boot: 1, began: 500, firstRequest: 600,
        events: [ev('init-network'), ev('init-network', 'finish', 'SUCCESS', 1001)],
      });
    } finally {
      other.close();
    }
  });

  test('a new boot drops the last one\'s events and counts up', async () => {
    const { store } = get();
    await register(WEB);
    store.beginBoot(WEB.uuid, 500, 500);
    await store.appendBootEvents(new Map([[WEB.uuid, [ev('modules-final', 'finish', 'SUCCESS')]]]), 200);
    store.beginBoot(WEB.uuid, 900, null);
    assert.deepEqual(store.bootRecord(WEB.uuid), { boot: 2, began: 900, firstRequest: null, events: [] });
  });

  test('only the last `keep` events of an instance are kept, and other instances keep theirs', async () => {
    const { store } = get();
    await register(WEB);
    await register(DB);
    store.markFirstRequest(DB.uuid, 1);
    await store.appendBootEvents(new Map([[DB.uuid, [ev('db-event')]]]), 3);
    for (let i = 0; i < 4; i++) {
      await store.appendBootEvents(new Map([[WEB.uuid, [ev(`a${i}`), ev(`b${i}`)]]]), 3);
    }
    assert.deepEqual(store.bootRecord(WEB.uuid)?.events.map((e) => e.name), ['b2', 'a3', 'b3']);
    assert.deepEqual(store.bootRecord(DB.uuid)?.events.map((e) => e.name), ['db-event']);
  });

  test('events of a uuid with no instance are dropped, and deleting an instance removes its boot', async () => {
    const { store } = get();
    await register(WEB);
    await store.appendBootEvents(new Map([['no-such-uuid', [ev('x')]], [WEB.uuid, [ev('y')]]]), 200);
    store.beginBoot('no-such-uuid', 1, 1);
    assert.equal(store.bootRecord('no-such-uuid'), undefined);
    assert.deepEqual(store.bootRecord(WEB.uuid)?.events.map((e) => e.name), ['y']);
    await store.delete(WEB.name);
    await register(WEB);
    assert.equal(store.bootRecord(WEB.uuid), undefined, 'a VM registered again under the same uuid starts clean');
  });

  test('a rekeyed instance keeps its boot under the new uuid', async () => {
    const { store } = get();
    await register(WEB);
    store.markFirstRequest(WEB.uuid, 42);
    const uuid = '99999999-2222-3333-4444-555555555555';
    await store.rekey(WEB.name, uuid);
    assert.equal(store.bootRecord(uuid)?.firstRequest, 42);
    assert.equal(store.bootRecord(WEB.uuid), undefined);
  });
}
