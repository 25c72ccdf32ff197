// Three hosts of a cluster as a user runs them: each in its own network namespace with its own
// bridge, 169.254.169.254, mdserver process and dnsmasq, all three on one real PostgreSQL reached
// over its unix socket, each host logging in as its own role. VMs are namespaces behind one
// host's bridge; they get their addresses from that host's dnsmasq (a real dhclient) and their
// metadata from that host's mdserver, and the project's hook registers domains as libvirt runs it.
// (test/cluster.test.ts covers the same store from in-process servers on loopback.)
//
//   host-a, host-b: verify_mac = yes; host-c: verify_mac = no, so that one prober namespace can
//   ask for many instances' metadata from their addresses after host-c's restart.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test, type TestContext } from 'node:test';
import { ClusterHost, address, dhclient, metadata, unplug, VM_NET } from './clusterNet.js';
import { domainXml, tempDir, type DomainSpec } from './helpers.js';
import { cleanupNetns, Netns, skipUnlessNetns, veth } from './netns.js';
import { PgServer } from './postgres.js';
import { cli, run } from './process.js';

const needs = skipUnlessNetns(['/usr/sbin/dnsmasq', 'dhclient', 'curl', 'setpriv']);
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');
const vm = (i: number): DomainSpec => ({
  name: `cn${i}`, uuid: `c2000000-0000-4000-8000-${hex(i, 12)}`, mac: `52:54:00:c2:${hex(i >> 8, 2)}:${hex(i & 255, 2)}`,
});
const ipOf = (hookStderr: string): string => {
  const ip = /(?:registered|updated) \S+ mac=\S+ ipv4=(\S+)/.exec(hookStderr)?.[1];
  assert.ok(ip, hookStderr);
  return ip;
};
const instanceId = (v: Netns): string => metadata(v, '/latest/meta-data/instance-id').body;

/** Polls `check` as fast as it can be asked, up to `ms`: how long it took to become true. */
async function within(what: string, ms: number, check: () => boolean): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (check()) return Date.now() - started;
    assert.ok(Date.now() - started < ms, `${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The roles of a cluster: each host logs in as its own role and acts as the shared one, which owns the schema. */
async function clusterDatabase(pg: PgServer): Promise<(host: string) => string> {
  await pg.sql('CREATE ROLE mdserver NOLOGIN');
  for (const h of ['a', 'b', 'c']) {
    await pg.sql(`CREATE ROLE host_${h} LOGIN IN ROLE mdserver`);
    await pg.sql(`ALTER ROLE host_${h} SET role = 'mdserver'`);
  }
  await pg.sql('CREATE DATABASE cluster OWNER mdserver');
  return (h) => `postgresql://host_${h}@/cluster?host=${encodeURIComponent(pg.dir)}`;
}

describe('three hosts, each in its own network namespace with its own bridge and dnsmasq, sharing one PostgreSQL', needs, () => {
  let pg: PgServer;
  const hosts: ClusterHost[] = [];
  const dir = tempDir('mdserver-clnet-');
  const [a, b, c] = [0, 1, 2].map((i) => (): ClusterHost => hosts[i] as ClusterHost) as [() => ClusterHost, () => ClusterHost, () => ClusterHost];
  const rows = async (): Promise<{ uuid: string; ipv4: string; host: string; mac: string }[]> =>
    pg.sql('SELECT uuid, ipv4, host, mac FROM instances', [], 'cluster');
  /** Registers `spec` by the hook on `on`, plugs its VM in behind `behind` at its address. */
  const vmOn = (on: ClusterHost, spec: DomainSpec, behind = on): { ip: string; ns: Netns } => {
    const r = on.hook('prepare', spec);
    assert.equal(r.status, 0, r.stderr);
    const ip = ipOf(r.stderr);
    return { ip, ns: behind.attach(spec, ip) };
  };

  before(async () => {
    pg = await PgServer.start();
    const url = await clusterDatabase(pg);
    // All three at once on the empty database, as hosts booting together would: one creates the
    // schema (under its advisory lock), the others wait for it.
    hosts.push(...await Promise.all(['a', 'b', 'c'].map((h) =>
      ClusterHost.start(`host-${h}`, url(h), { mdserver: { verify_mac: h === 'c' ? 'no' : 'yes' } }))));
  });
  after(async () => {
    if (process.env['MDSERVER_TEST_LOGS']) for (const h of hosts) process.stderr.write(h.logs());
    for (const h of hosts) await h.stop();
    pg?.destroySync();
    cleanupNetns();
  });

  test('a domain the hook registers on host-a is served to its VM behind host-b within one second, and host-b\'s dnsmasq lists it', async (t) => {
    const spec = vm(1);
    const ns = b().attach(spec);
    const r = a().hook('prepare', spec);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
    const ip = ipOf(r.stderr);
    const acked = Date.now();
    address(ns, ip);
    await within('host-b serving it', 1000, () => instanceId(ns) === `i-${ip}`);
    // From the hook's exit to host-b's first right answer, asked by the VM's own curl: setting the
    // VM's address and starting curl count against the bound too.
    const took = Date.now() - acked;
    t.diagnostic(`propagation from host-a's acknowledgement to host-b serving the VM: ${took} ms`);
    assert.ok(took < 1000, `${took} ms`);
    assert.equal(metadata(ns, '/latest/meta-data/local-hostname').body, spec.name);
    await within("host-b's dnsmasq listing it", 5000, () => b().dhcpHosts().includes(`${spec.mac},id:*,${ip},`));
    assert.deepEqual((await rows()).find((row) => row.uuid === spec.uuid)?.host, 'host-a', 'the record names the host that registered it');
  });

  test('attack: a VM behind host-b that takes the address of a VM running on host-a is refused (verify_mac), as on one host', async () => {
    const victim = vmOn(a(), vm(2));
    const thief = vmOn(c(), vm(3), b());
    await within('host-a serving the victim', 3000, () => instanceId(victim.ns) === `i-${victim.ip}`);
    await within('host-b serving the thief as itself', 3000, () => instanceId(thief.ns) === `i-${thief.ip}`);
    thief.ns.ip('addr', 'flush', 'dev', 'eth0');
    address(thief.ns, victim.ip);
    for (const p of ['/latest/meta-data/instance-id', '/latest/meta-data/public-keys/0/openssh-key', '/latest/user-data']) {
      const r = metadata(thief.ns, p);
      assert.equal(r.status, 403, `${p}: ${r.body}`);
      assert.doesNotMatch(r.body, /ssh-|cloud-config|i-10\./);
    }
    assert.match(b().logs(), /refused a caller whose MAC does not match the instance/);
    assert.equal(instanceId(victim.ns), `i-${victim.ip}`, 'the victim is still served by its own host');
    thief.ns.delete();
  });

  test('attack: a domain defined on host-a cannot take the name, MAC, uuid or DNS name of a domain registered on host-c (409, saying whose it is)', async () => {
    const owner = vm(4);
    const ownerIp = ipOf(c().hook('prepare', owner).stderr);
    const attempts: [DomainSpec, RegExp][] = [
      [{ ...vm(5), name: owner.name }, new RegExp(`name cn4 of domain ${vm(5).uuid} already belongs to the instance of domain ${owner.uuid} \\(address ${ownerIp.replace(/\./g, '\\.')}\\)`)],
      [{ ...vm(6), mac: owner.mac }, new RegExp(`MAC ${owner.mac} of domain cn6 \\(${vm(6).uuid}\\) already belongs to domain cn4 \\(${owner.uuid}\\)`)],
      // Not a migration (that keeps the MAC): another domain given the owner's uuid.
      [{ ...vm(9), uuid: owner.uuid }, new RegExp(`uuid ${owner.uuid} of domain cn9 \\(MAC ${vm(9).mac}\\) is registered by host host-c as cn4 with MAC ${owner.mac}`)],
      [{ ...vm(7), name: 'CN4' }, new RegExp(`host name CN4 of domain CN4 \\(${vm(7).uuid}\\) is already the host name of domain cn4 \\(${owner.uuid}\\): DNS names ignore case`)],
    ];
    for (const [spec, why] of attempts) {
      const r = a().hook('prepare', spec);
      assert.equal(r.status, 0, 'the hook never fails a VM start');
      assert.match(r.stderr, /mdserver refused the domain \(409\): /);
      assert.match(r.stderr, why);
      const direct = await a().upload(domainXml(spec));
      assert.equal(direct.status, 409, direct.body);
    }
    const stored = await rows();
    assert.deepEqual(stored.filter((r) => [vm(5), vm(6), vm(7)].some((s) => s.uuid === r.uuid) || [vm(5), vm(6), vm(7), vm(9)].some((s) => s.mac === r.mac)), [], 'nothing stored for them');
    assert.deepEqual(stored.find((r) => r.uuid === owner.uuid), { uuid: owner.uuid, ipv4: ownerIp, host: 'host-c', mac: owner.mac }, 'the owner untouched');
    const ns = c().attach(owner, ownerIp);
    assert.equal(instanceId(ns), `i-${ownerIp}`);
  });

  test('1,000 uploads spread over the three hosts in parallel: 1,000 distinct addresses, every acknowledged one in the database and in every dnsmasq', async (t) => {
    const N = 1000;
    const acked = new Map<string, { ip: string; mac: string }>();
    const failed: string[] = [];
    let next = 0;
    const started = Date.now();
    await Promise.all(Array.from({ length: 24 }, async (_, w) => {
      const h = hosts[w % 3] as ClusterHost;
      while (next < N) {
        const spec = vm(1000 + next++);
        const r = await h.upload(domainXml(spec));
        const ip = /ipv4=(\S+)/.exec(r.body)?.[1];
        if (r.status === 201 && ip) acked.set(spec.uuid, { ip, mac: spec.mac });
        else failed.push(`${h.name} ${spec.name}: ${r.status} ${r.body}`);
      }
    }));
    t.diagnostic(`${N} uploads over three hosts' admin sockets in ${Date.now() - started} ms`);
    assert.deepEqual(failed, []);
    assert.equal(acked.size, N);
    assert.equal(new Set([...acked.values()].map((v) => v.ip)).size, N, 'no address given twice');
    const stored = await rows();
    const byUuid = new Map(stored.map((r) => [r.uuid, r]));
    for (const [uuid, { ip }] of acked) assert.equal(byUuid.get(uuid)?.ipv4, ip, `${uuid} stored at the address it was told`);
    assert.equal(new Set(stored.map((r) => r.ipv4)).size, stored.length, 'no address on two records');
    for (const h of hosts) {
      await within(`${h.name}'s dnsmasq listing all of them`, 20_000, () => {
        const listed = h.dhcpHosts();
        return [...acked.values()].every((v) => listed.includes(`${v.mac},id:*,${v.ip},`));
      });
    }
  });

  test("a live migration: the hook's migrate begin on host-b keeps address and instance-id, and dhclient behind host-b gets the same address", async () => {
    const spec = vm(8);
    const ns = a().attach(spec);
    const ip = ipOf(a().hook('prepare', spec).stderr);
    assert.equal(await dhclient(ns, dir), ip, "host-a's dnsmasq hands out the registered address");
    address(ns, ip);
    const id = instanceId(ns);
    assert.equal(id, `i-${ip}`);
    const m = b().hook('migrate', spec);
    assert.equal(m.status, 0, m.stderr);
    assert.equal(m.stdout, '', 'libvirt reads the stdout of migrate as a replacement XML');
    assert.equal(ipOf(m.stderr), ip);
    assert.equal((await rows()).find((r) => r.uuid === spec.uuid)?.host, 'host-b');
    // The VM arrives on host-b: same MAC, plugged into host-b's bridge, asking anew.
    unplug(ns);
    b().attach(spec, undefined, ns);
    assert.equal(await dhclient(ns, dir), ip, "host-b's dnsmasq hands out the same address");
    address(ns, ip);
    assert.equal(instanceId(ns), id);
    assert.equal(metadata(ns, '/latest/meta-data/local-ipv4').body, ip);
    const shown = await cli(['instances', 'show', spec.name, '--json', '--config', a().config]);
    assert.equal((JSON.parse(shown.stdout) as { host: string }).host, 'host-b', 'host-a knows where it runs now');
  });

  test('PostgreSQL stopped: every host answers metadata, refuses uploads with 503, says degraded; started again: each catches up by itself', async (t) => {
    const behind = [a(), b(), c()].map((h, i) => ({ h, ...vmOn(a(), vm(20 + i), h) }));
    for (const v of behind) await within(`${v.h.name} serving its VM`, 3000, () => instanceId(v.ns) === `i-${v.ip}`);
    for (const h of hosts) assert.equal(h.health().status, 'ok', JSON.stringify(h.health()));
    const before = (await rows()).length;
    pg.stopSync();
    try {
      for (const v of behind) {
        await within(`${v.h.name} noticing`, 5000, () => v.h.health().problems.some((p) => p.startsWith('the instance store is unreachable since')));
        assert.equal(v.h.health().status, 'degraded');
        assert.equal(instanceId(v.ns), `i-${v.ip}`, 'metadata from memory');
        const refused = await v.h.upload(domainXml(vm(30)));
        assert.equal(refused.status, 503);
        assert.match(refused.body, /instance store \(PostgreSQL\) is unreachable, nothing was stored/);
        assert.match(v.h.hook('prepare', vm(31)).stderr, /mdserver refused the domain \(503\)/);
      }
    } finally {
      pg.startSync();
    }
    for (const h of hosts) {
      const took = await within(`${h.name} reconnecting`, 15_000, () => h.health().status === 'ok');
      t.diagnostic(`${h.name} healthy again ${took} ms after PostgreSQL was back`);
    }
    assert.equal((await rows()).length, before, 'nothing half-written by the refused uploads');
    const later = vmOn(a(), vm(32), b());
    await within('host-b serving what host-a registered after the outage', 1000, () => instanceId(later.ns) === `i-${later.ip}`);
  });

  test('host-b cut off from the database (its role may not log in): it serves from memory; let back in, it catches up on what changed meanwhile', async () => {
    const doomed = vmOn(a(), vm(40), b());
    await within('host-b serving the doomed VM', 3000, () => instanceId(doomed.ns) === `i-${doomed.ip}`);
    await pg.sql('ALTER ROLE host_b NOLOGIN');
    await pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'host_b'");
    try {
      await within('host-b noticing', 5000, () => b().health().status === 'degraded');
      assert.equal(a().health().status, 'ok');
      const added = vm(41);
      const addedIp = ipOf(a().hook('prepare', added).stderr);
      const del = await cli(['instances', 'delete', vm(40).name, '--config', a().config]);
      assert.equal(del.status, 0, del.stderr);
      const addedNs = b().attach(added, addedIp);
      // Cut off, host-b has seen neither change: the copy in its memory is what it serves.
      assert.equal(instanceId(doomed.ns), `i-${doomed.ip}`);
      assert.match(instanceId(addedNs), /^Unknown client/);
      await pg.sql('ALTER ROLE host_b LOGIN');
      await within('host-b back', 15_000, () => b().health().status === 'ok');
      await within('host-b serving what was added meanwhile', 1000, () => instanceId(addedNs) === `i-${addedIp}`);
      assert.match(instanceId(doomed.ns), /^Unknown client/, 'and no longer what was deleted meanwhile');
      await within("host-b's dnsmasq following", 5000, () => b().dhcpHosts().includes(`${added.mac},id:*,${addedIp},`) && !b().dhcpHosts().includes(vm(40).mac));
    } finally {
      await pg.sql('ALTER ROLE host_b LOGIN');
    }
  });

  test('host-c killed with SIGKILL and started again serves every instance at once, including one registered while it was down', async (t) => {
    const dnsmasqPid = c().dnsmasqPid();
    await c().kill9();
    const whileDown = vm(50);
    const downIp = ipOf(a().hook('prepare', whileDown).stderr);
    const started = Date.now();
    await c().startServer();
    t.diagnostic(`host-c answering again ${Date.now() - started} ms after its start`);
    const all = await rows();
    assert.equal(c().health().instances, all.length, 'every instance in memory');
    await probeAll(t, c(), [downIp, ...sample(all.map((r) => r.ipv4), 150)]);
    await within("host-c's dnsmasq listing it", 5000, () => c().dhcpHosts().includes(`${whileDown.mac},id:*,${downIp},`));
    assert.equal(c().dnsmasqPid(), dnsmasqPid, 'the same dnsmasq, signalled by the new mdserver');
  });
});

/** `n` of `list`, spread over it. */
function sample<T>(list: readonly T[], n: number): T[] {
  const step = Math.max(1, Math.floor(list.length / n));
  return list.filter((_, i) => i % step === 0).slice(0, n);
}

// Runs inside the prober: asks for each address's instance-id from that address, 8 at a time.
const PROBE = `
const http = require('node:http');
const ips = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
const get = (ip) => new Promise((resolve) => {
  const req = http.get({ host: '169.254.169.254', path: '/latest/meta-data/instance-id', localAddress: ip, agent: false, timeout: 5000 }, (res) => {
    let body = ''; res.on('data', (c) => (body += c)); res.on('end', () => resolve(body));
  });
  // A timeout only says so: the request is ended here, and named in the result.
  req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
  req.on('error', (e) => resolve('error ' + e.message));
});
// Once more after a request that got no answer at all (a packet lost on the way, which cloud-init
// would retry too); a wrong answer is never retried.
const one = async (ip) => { const body = await get(ip); return body.startsWith('error ') ? get(ip) : body; };
let i = 0; const wrong = [];
Promise.all(Array.from({ length: 8 }, async () => {
  while (i < ips.length) { const ip = ips[i++]; const body = await one(ip); if (body !== 'i-' + ip) wrong.push(ip + ': ' + body); }
})).then(() => process.stdout.write(JSON.stringify(wrong)));
`;

/**
 * Asks `host` for the metadata of every address in `ips`, each from its own address: one VM
 * namespace behind `host` holding all of them (with verify_mac off, its one MAC passes for all).
 */
async function probeAll(t: TestContext, host: ClusterHost, ips: string[]): Promise<void> {
  const ns = Netns.create('mdsclp');
  try {
    host.ns.ip('link', 'set', veth(host.ns, ns, '52:54:00:c2:ff:ff'), 'master', 'br-mds');
    address(ns, ips[0] as string);
    const batch = ips.slice(1).map((ip) => `addr add ${ip}/${VM_NET.prefix} dev eth0`).join('\n');
    execFileSync('ip', ['-n', ns.name, '-batch', '-'], { input: `${batch}\n` });
    const started = Date.now();
    const r = await run('ip', ['netns', 'exec', ns.name, process.execPath, '-e', PROBE], { input: JSON.stringify(ips) });
    t.diagnostic(`${ips.length} instances' metadata from host-c in ${Date.now() - started} ms`);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [], 'every instance served at once');
  } finally {
    ns.delete();
  }
}
