// Several hosts, one PostgreSQL store: three mdservers (each with its own directory, dnsmasq
// files and admin socket) on one real PostgreSQL. What a user of a cluster sees: an upload on one
// host is served by every other; a migration keeps the VM's address and instance-id; the database
// going away leaves metadata served and uploads refused, and its return is caught up by itself;
// a host killed with SIGKILL serves everything again as soon as it is back.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { domainXml, request, startTestServer, tempDir, upload, writeConfig, type DomainSpec, type TestServer } from './helpers.js';
import { PgServer } from './postgres.js';
import { HOOK, run, spawnServer } from './process.js';

const vm = (i: number): DomainSpec => ({
  name: `cl${i}`, uuid: `c1000000-0000-4000-8000-${String(i).padStart(12, '0')}`, mac: `52:54:00:c1:00:${i.toString(16).padStart(2, '0')}`,
});

async function waitFor(what: string, ms: number, check: () => Promise<boolean> | boolean): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    assert.ok(Date.now() - started < ms, `${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const instanceId = async (t: TestServer, ip: string): Promise<string> =>
  (await request(t.port, '/latest/meta-data/instance-id', { from: ip })).body;

const dhcpHosts = (t: TestServer): string => {
  const f = path.join(t.dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
};

describe('three hosts sharing one PostgreSQL store', () => {
  let pg: PgServer;
  const hosts: TestServer[] = [];
  const host = (i: number) => (): TestServer => hosts[i] as TestServer;
  const [a, b, c] = [host(0), host(1), host(2)];
  before(async () => {
    pg = await PgServer.start();
    const url = pg.url();
    // host-c does not share the VM network: its dnsmasq lists only what it registered.
    for (const [name, scope] of [['host-a', 'cluster'], ['host-b', 'cluster'], ['host-c', 'local']]) {
      hosts.push(await startTestServer({ store: { url, host_name: name as string, dhcp_scope: scope as string } }));
    }
  });
  after(async () => {
    for (const h of hosts) await h.close();
    pg.destroySync();
  });

  test('a domain uploaded on one host is served to its VM by another within a second, and listed by its dnsmasq', async () => {
    const ip = await upload(a().port, vm(1));
    const took = await waitFor('host-b serving it', 1000, async () => (await instanceId(b(), ip)) === `i-${ip}`);
    assert.ok(took < 1000);
    await waitFor("host-b's dnsmasq listing it", 3000, () => dhcpHosts(b()).includes(ip));
    assert.equal(c().running.store.byIPv4(ip)?.host, 'host-a', 'every host knows who registered it');
    assert.ok(!dhcpHosts(c()).includes(ip), 'a host with dhcp_scope = local lists only its own');
  });

  test("a live migration (the hook's migrate begin on the destination) keeps the address and instance-id, and moves the host", async () => {
    const ip = await upload(a().port, vm(2));
    const before = await instanceId(a(), ip);
    const defaults = path.join(b().dir, 'hook-defaults');
    fs.writeFileSync(defaults, `MDSERVER_URL=http://127.0.0.1:9\nMDSERVER_SOCKET=${b().running.adminSocket ?? ''}\n`);
    const r = await run(HOOK, [vm(2).name, 'migrate', 'begin', '-'], { input: domainXml(vm(2)), env: { MDSERVER_DEFAULTS: defaults, MDSERVER_HOOK_SYSLOG: 'no' } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '', 'libvirt reads the stdout of migrate as a replacement XML');
    assert.equal(await instanceId(b(), ip), before);
    assert.equal(b().running.store.byName(vm(2).name)?.host, 'host-b');
    await waitFor('host-a seeing it moved', 1000, () => a().running.store.byName(vm(2).name)?.host === 'host-b');
    assert.equal(a().running.store.byName(vm(2).name)?.ipv4, ip);
  });

  test('600 uploads spread over the three hosts in parallel get 600 distinct addresses, and every acknowledged one is in the database', async () => {
    const acked = new Map<string, string>();
    let next = 0;
    await Promise.all(Array.from({ length: 24 }, async (_, w) => {
      const h = hosts[w % 3] as TestServer;
      while (next < 600) {
        const spec = vm(1000 + next++);
        acked.set(spec.uuid, await upload(h.port, { ...spec, mac: `52:54:00:c2:${(next >> 8).toString(16).padStart(2, '0')}:${(next & 255).toString(16).padStart(2, '0')}` }));
      }
    }));
    assert.equal(new Set(acked.values()).size, 600, 'no address given twice');
    const rows = await pg.sql<{ uuid: string; ipv4: string }>('SELECT uuid, ipv4 FROM instances');
    const stored = new Map(rows.map((r) => [r.uuid, r.ipv4]));
    for (const [uuid, ip] of acked) assert.equal(stored.get(uuid), ip, `${uuid} stored at the address it was told`);
    for (const h of hosts) await waitFor('every host holding all of them', 3000, () => [...acked.values()].every((ip) => h.running.store.byIPv4(ip) !== undefined));
  });

  test('PostgreSQL stopped: every host answers metadata, uploads get 503 saying why, health is degraded; back: each catches up by itself', async () => {
    const ip = await upload(b().port, vm(3));
    await waitFor('every host knowing it', 1000, () => hosts.every((h) => h.running.store.byIPv4(ip) !== undefined));
    const count = async (): Promise<number> => Number((await pg.sql<{ n: string }>('SELECT count(*) AS n FROM instances'))[0]?.n);
    const before = await count();
    pg.stopSync();
    try {
      for (const h of hosts) {
        // (/health is degraded anyway here, with no dnsmasq running: the store's own line tells.)
        await waitFor('the loss noticed', 3000, async () => (await request(h.port, '/health')).body.includes('the instance store is unreachable since'));
        assert.equal(await instanceId(h, ip), `i-${ip}`, 'metadata from memory');
        const refused = await request(h.port, '/instance-upload', { method: 'POST', body: domainXml(vm(4)), headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
        assert.equal(refused.status, 503);
        assert.match(refused.body, /instance store \(PostgreSQL\) is unreachable, nothing was stored/);
        assert.equal((JSON.parse((await request(h.port, '/health')).body) as { status: string }).status, 'degraded');
      }
    } finally {
      pg.startSync();
    }
    for (const h of hosts) await waitFor('reconnected', 10_000, async () => !(await request(h.port, '/health')).body.includes('instance store'));
    const again = await upload(c().port, vm(4));
    await waitFor('the others seeing what host-c stored after the outage', 1000, () => a().running.store.byIPv4(again) !== undefined && b().running.store.byIPv4(again) !== undefined);
    assert.equal(await count(), before + 1, 'nothing half-written by the refused uploads');
  });

  test('a host killed with SIGKILL and started again serves every instance at once', async () => {
    const dir = tempDir();
    const config = writeConfig(dir, { store: { url: pg.url(), host_name: 'host-d' }, mdserver: { port: 0, admin_socket: 'no' } });
    const ips = hosts.flatMap((h) => h.running.store.all().map((i) => i.ipv4 as string));
    for (let round = 0; round < 2; round++) {
      const child = spawnServer(config);
      try {
        await waitFor('listening', 15_000, () => /listening.*port=(\d+)/.test(child.output()));
        const port = Number(/listening.*port=(\d+)/.exec(child.output())?.[1]);
        for (const ip of ips) assert.equal((await request(port, '/latest/meta-data/instance-id', { from: ip })).body, `i-${ip}`);
      } finally {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
    }
  });
});
