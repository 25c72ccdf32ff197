// The cached metadata views outlive changes to other instances, never changes to their own.
//
// Attacker: a tenant that uploads, re-defines and deletes domains in a loop (or a cluster's
// ordinary churn: every host's upload moves every host's store generation). A change to another
// record must not make a VM's view be built again; a change to the VM's own record, its deletion
// or another VM taking its address must be served at once. On a real SQLite file, and on a real
// PostgreSQL where the changes are made through a second store handle (another host) and served
// by this host once its feed applied them.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig, type Config } from '../src/config/index.js';
import { silenceLogging } from '../src/log.js';
import { MetadataService, type InstanceMetadata } from '../src/metadata/service.js';
import { lookup as treeLookup } from '../src/metadata/tree.js';
import { PgStore } from '../src/store/postgres.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { sameInstance } from '../src/store/rows.js';
import type { Instance, Registration, Store } from '../src/store/store.js';
import { UserdataRenderer } from '../src/userdata/renderer.js';
import { tempDir, writeConfig } from './helpers.js';
import { PgServer } from './postgres.js';

if (!process.env['MDSERVER_TEST_LOGS']) silenceLogging();

/** Two stores on the same data: `here` serves, `elsewhere` writes (the same handle for SQLite). */
interface Rig {
  here: Store;
  elsewhere: Store;
  /** Resolves once `here` has applied everything `elsewhere` committed. */
  applied(): Promise<void>;
  close(): Promise<void>;
}

let server: PgServer | null = null;
after(() => server?.destroySync());

async function sqliteRig(): Promise<Rig> {
  const store = new SqliteStore(path.join(tempDir(), 'mdserver.db'));
  return { here: store, elsewhere: store, applied: async () => undefined, close: async () => store.close() };
}

async function pgRig(): Promise<Rig> {
  server ??= await PgServer.start();
  const url = server.url(await server.createDatabase());
  const here = await PgStore.open({ url, password: null, host: 'host-a' });
  const elsewhere = await PgStore.open({ url, password: null, host: 'host-b' });
  return {
    here, elsewhere,
    applied: () => here.caughtUp(),
    close: async () => {
      await elsewhere.close();
      await here.close();
    },
  };
}

const X: Registration = { name: 'x', uuid: 'c0000000-0000-4000-8000-00000000000a', mac: '52:54:00:c0:00:0a', metadata: { role: 'web' }, arch: null, location: 'rack1' };
const Y: Registration = { name: 'y', uuid: 'c0000000-0000-4000-8000-00000000000b', mac: '52:54:00:c0:00:0b', metadata: { role: 'db' }, arch: null, location: 'rack1' };
const Z: Registration = { name: 'z', uuid: 'c0000000-0000-4000-8000-00000000000c', mac: '52:54:00:c0:00:0c', metadata: {}, arch: null, location: 'rack1' };
const IP = { x: '127.1.0.10', y: '127.1.0.11', z: '127.1.0.12' };

/** Registers `reg` through `store`, at `ip` when it needs an address. */
async function register(store: Store, reg: Registration, ip: string): Promise<void> {
  const [outcome] = await store.registerAll([reg], () => ip);
  if (outcome instanceof Error) throw outcome;
}

function config(dir: string, instanceType = 't2.micro'): Config {
  return loadConfig(writeConfig(dir, { 'instance-defaults': { instance_type: instanceType } })).config;
}

/** The EC2 value at `p` (under meta-data/) in a view. */
function ec2(view: InstanceMetadata | undefined, p: string): unknown {
  assert.ok(view, 'the caller is found');
  return treeLookup(view.ec2, ['meta-data', ...p.split('/')]);
}

for (const [backend, open] of [['SQLite', sqliteRig], ['PostgreSQL', pgRig]] as const) {
  describe(`cached metadata views (${backend})`, () => {
    test('changes to other instances do not rebuild a VM\'s view; its own change is served at once', async () => {
      const rig = await open();
      try {
        const cfg = config(tempDir());
        const svc = new MetadataService(() => cfg, rig.here);
        await register(rig.elsewhere, X, IP.x);
        await register(rig.elsewhere, Y, IP.y);
        await rig.applied();
        const view = svc.lookup(IP.x);
        assert.equal(ec2(view, 'tags/instance/role'), 'web');
        const churn: [string, () => Promise<unknown>][] = [
          ['Y uploaded again with other metadata', () => register(rig.elsewhere, { ...Y, metadata: { role: 'cache' } }, IP.y)],
          ['another domain registered', () => register(rig.elsewhere, Z, IP.z)],
          ['Y deleted', () => rig.elsewhere.delete('y')],
        ];
        for (const [what, change] of churn) {
          const generation = rig.here.generation;
          await change();
          await rig.applied();
          assert.ok(rig.here.generation > generation, `${what} moved the store's generation`);
          assert.equal(svc.lookup(IP.x), view, `${what}: X's view is the one already built`);
        }
        assert.equal(svc.lookup(IP.y), undefined, 'deleted Y is no longer served');

        await register(rig.elsewhere, { ...X, metadata: { role: 'mail' } }, IP.x);
        await rig.applied();
        const changed = svc.lookup(IP.x);
        assert.notEqual(changed, view);
        assert.equal(ec2(changed, 'tags/instance/role'), 'mail', 'X\'s own change is served on the next request');
        assert.equal(svc.lookup(IP.x), changed, 'and that view is kept in turn');
      } finally {
        await rig.close();
      }
    });

    test('a VM that takes over a deleted VM\'s address gets its own data, never the cached view of the one before', async () => {
      const rig = await open();
      try {
        const cfg = config(tempDir());
        const svc = new MetadataService(() => cfg, rig.here);
        await register(rig.elsewhere, X, IP.x);
        await rig.applied();
        assert.equal(svc.lookup(IP.x)?.data.instance.name, 'x');
        // No request in between: the old view is still cached under the address.
        await rig.elsewhere.delete('x');
        await register(rig.elsewhere, { ...Z, metadata: { role: 'newcomer' } }, IP.x);
        await rig.applied();
        const now = svc.lookup(IP.x);
        assert.equal(now?.data.instance.uuid, Z.uuid);
        assert.equal(ec2(now, 'instance-id'), `i-${IP.x}`);
        assert.equal(ec2(now, 'hostname'), 'z');
        assert.equal(ec2(now, 'tags/instance/role'), 'newcomer');
      } finally {
        await rig.close();
      }
    });

    test('a tenant that named its domain after the MAC of a later VM loses that VM\'s template once the VM exists', async () => {
      const rig = await open();
      try {
        const dir = tempDir();
        const cfg = config(dir);
        const svc = new MetadataService(() => cfg, rig.here);
        // checkMs 0: every rendering looks at the template files again.
        const userdata = new UserdataRenderer(() => cfg, '#cloud-config\nbuilt-in: true\n', rig.here, 0);
        const tenant: Registration = { ...X, name: Z.mac };
        await register(rig.elsewhere, tenant, IP.x);
        await rig.applied();
        const view = svc.lookup(IP.x);
        assert.ok(view);
        assert.equal(userdata.render(view.data), '#cloud-config\nbuilt-in: true\n');
        // The administrator prepares the template of the VM with that MAC, which is then defined.
        fs.writeFileSync(path.join(cfg.mdserver.userdataDir, `${Z.mac}.yaml`), '#cloud-config\nsecret: for-z\n');
        await register(rig.elsewhere, Z, IP.z);
        await rig.applied();
        assert.equal(svc.lookup(IP.x), view, 'the tenant\'s view itself is kept (its record did not change)');
        assert.equal(userdata.render(view.data), '#cloud-config\nbuilt-in: true\n', 'the tenant does not get the template');
        const owner = svc.lookup(IP.z);
        assert.ok(owner);
        assert.equal(userdata.render(owner.data), '#cloud-config\nsecret: for-z\n');
      } finally {
        await rig.close();
      }
    });

    test('a configuration reload rebuilds every view', async () => {
      const rig = await open();
      try {
        const dir = tempDir();
        let cfg = config(dir);
        const svc = new MetadataService(() => cfg, rig.here);
        await register(rig.elsewhere, X, IP.x);
        await rig.applied();
        const view = svc.lookup(IP.x);
        assert.equal(ec2(view, 'instance-type'), 't2.micro');
        assert.equal(svc.lookup(IP.x), view);
        cfg = config(dir, 'm5.large');
        const reloaded = svc.lookup(IP.x);
        assert.notEqual(reloaded, view);
        assert.equal(ec2(reloaded, 'instance-type'), 'm5.large');
      } finally {
        await rig.close();
      }
    });
  });
}

test('two readings of a record are the same only when every field is', () => {
  const inst: Instance = {
    name: 'x', hostName: 'x', uuid: X.uuid, mac: X.mac, ipv4: IP.x, ipv6: null, location: 'rack1', metadata: { a: '1', b: '2' },
    arch: null, nwfilter: null, host: 'host-a', firstSeen: 1, lastUpdate: 2,
  };
  assert.ok(sameInstance(inst, { ...inst, metadata: { a: '1', b: '2' } }), 'a fresh reading of the same row');
  for (const key of Object.keys(inst) as (keyof Instance)[]) {
    const v = inst[key];
    const other = typeof v === 'number' ? v + 1 : typeof v === 'string' ? `${v}!` : v === null ? 'set' : { ...v, c: '3' };
    assert.equal(sameInstance(inst, { ...inst, [key]: other }), false, `a change of ${key} is seen`);
  }
  assert.equal(sameInstance(inst, { ...inst, metadata: { a: '1', b: '3' } }), false, 'a changed value');
  assert.equal(sameInstance(inst, { ...inst, metadata: { b: '2', a: '1' } }), false, 'the same entries in another order (they are served in order)');
  assert.equal(sameInstance(inst, { ...inst, metadata: { a: '1' } }), false, 'an entry removed');
});
