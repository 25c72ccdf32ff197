// The admin commands (`mdserver instances|reload|status|sync`) against a running server, over its
// admin socket, exactly as an operator runs them.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { domainXml, request, startTestServer, tempDir, VM1, VM2, withVms, writeConfig, type Sections } from './helpers.js';
import { waitFor } from './netns.js';
import { cli } from './process.js';

const conf = (dir: string): string[] => ['--config', path.join(dir, 'mdserver.conf')];
const dhcpHosts = (dir: string): string => fs.readFileSync(path.join(dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts'), 'utf8');

test('instances list prints a table of the registered VMs and the host of each, and JSON with --json', async () => {
  await withVms({ store: { host_name: 'kvm-1' } }, [VM1, VM2], async (t, ip1, ip2) => {
    const table = await cli(['instances', 'list', ...conf(t.dir)]);
    assert.equal(table.status, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+IPV4\s+MAC\s+UUID\s+HOST\s+LAST UPDATE\s+NWFILTER\s+STATUS$/);
    assert.match(table.stdout, new RegExp(`^test1\\s+${ip1.replace(/\./g, '\\.')}\\s+${VM1.mac}\\s+${VM1.uuid}\\s+kvm-1\\s`, 'm'));
    assert.match(table.stdout, new RegExp(`^test2\\s+${ip2.replace(/\./g, '\\.')}\\s+${VM2.mac}\\s+${VM2.uuid}\\s`, 'm'));
    assert.equal(lines.at(-1), '2 instance(s)');

    const json = await cli(['instances', 'list', '--json', ...conf(t.dir)]);
    assert.equal(json.status, 0, json.stderr);
    const list = JSON.parse(json.stdout) as { name: string; ipv4: string; mac: string }[];
    assert.deepEqual(list.map((i) => [i.name, i.ipv4, i.mac]), [['test1', ip1, VM1.mac], ['test2', ip2, VM2.mac]]);
  });
});

test('instances show prints one VM with its metadata, and an unknown name exits 1 saying so', async () => {
  await withVms({}, [{ ...VM1, metadata: { userdata_prefix: 'web' } }], async (t, ip) => {
    const shown = await cli(['instances', 'show', 'test1', ...conf(t.dir)]);
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`^ipv4:\\s+${ip.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(shown.stdout, /^uuid:\s+becb25c7-b581-4ecd-b60e-a9942ad18879$/m);
    assert.match(shown.stdout, /^metadata\.userdata_prefix:\s+web$/m);

    const json = await cli(['instances', 'show', 'test1', '--json', ...conf(t.dir)]);
    assert.deepEqual((JSON.parse(json.stdout) as { metadata: unknown }).metadata, { userdata_prefix: 'web' });

    const missing = await cli(['instances', 'show', 'nosuchvm', ...conf(t.dir)]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no instance named "nosuchvm"/);
  });
});

test('instances delete frees the address and removes the VM from the dnsmasq host files at once', async () => {
  await withVms({}, [VM1, VM2], async (t, ip1) => {
    // Uploads right after start-up are coalesced into one write a moment later.
    await waitFor('both VMs in the dhcp-hosts file', () => dhcpHosts(t.dir).includes(VM1.mac) && dhcpHosts(t.dir).includes(VM2.mac));
    const del = await cli(['instances', 'delete', 'test1', ...conf(t.dir)]);
    assert.equal(del.status, 0, del.stderr);
    assert.match(del.stdout, new RegExp(`deleted test1 \\(${ip1.replace(/\./g, '\\.')}, ${VM1.mac}\\)`));
    assert.doesNotMatch(dhcpHosts(t.dir), new RegExp(VM1.mac));
    assert.match(dhcpHosts(t.dir), new RegExp(VM2.mac));
    // The old address no longer belongs to anyone.
    const r = await request(t.port, '/latest/meta-data/instance-id', { from: ip1 });
    assert.equal(r.status, 400);
    const again = await cli(['instances', 'delete', 'test1', ...conf(t.dir)]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /no instance named "test1"/);
  });
});

test('status is unhealthy while no dnsmasq runs, and healthy once the pid file names a live one', async () => {
  const t = await startTestServer();
  const standIn = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    const down = await cli(['status', ...conf(t.dir)]);
    assert.equal(down.status, 1);
    assert.match(down.stdout, /^status:\s+DEGRADED$/m);
    assert.match(down.stdout, /^dnsmasq:\s+NOT RUNNING/m);

    // dnsmasq's pid file lives in its own directory beside run_dir (systemd's RuntimeDirectory=).
    fs.mkdirSync(path.join(t.dir, 'run-dnsmasq'), { recursive: true });
    fs.writeFileSync(path.join(t.dir, 'run-dnsmasq', 'mds.pid'), `${standIn.pid}\n`);
    const up = await cli(['status', '--json', ...conf(t.dir)]);
    assert.equal(up.status, 0, up.stdout);
    const s = JSON.parse(up.stdout) as { healthy: boolean; instances: number; dnsmasq: { running: boolean; pid: number; files: { ok: boolean } } };
    assert.equal(s.healthy, true);
    assert.equal(s.dnsmasq.pid, standIn.pid);
    assert.equal(s.dnsmasq.files.ok, true);
    assert.equal(s.instances, 0);
  } finally {
    standIn.kill('SIGKILL');
    await t.close();
  }
});

test('reload applies a changed configuration to the running server', async () => {
  await withVms({}, [VM1], async (t, ip) => {
    const before = await request(t.port, '/latest/meta-data/public-keys/0/openssh-key', { from: ip });
    assert.equal(before.body, 'ssh-ed25519 AAAAdefaultkey user@host');
    writeConfig(t.dir, { 'public-keys': { default: 'ssh-ed25519 AAAArotatedkey user@host' }, dnsmasq: { lease_len: 3600 } });
    const r = await cli(['reload', ...conf(t.dir)]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'configuration reloaded\n');
    // lease_len is part of dnsmasq's main file, which dnsmasq re-reads only when restarted.
    assert.match(r.stderr, /needs a restart: the dnsmasq configuration changed.*restart mdserver-dnsmasq/);
    const after = await request(t.port, '/latest/meta-data/public-keys/0/openssh-key', { from: ip });
    assert.equal(after.body, 'ssh-ed25519 AAAArotatedkey user@host');
    assert.match(dhcpHosts(t.dir), new RegExp(`${VM1.mac},id:\\*,${ip.replace(/\./g, '\\.')},test1,3600`));
  });
});

test('reload refuses an invalid configuration, lists every problem and keeps serving with the old one', async () => {
  await withVms({}, [VM1], async (t, ip) => {
    writeConfig(t.dir, { mdserver: { imds_tokens: 'sometimes', debug: 'perhaps' } });
    const r = await cli(['reload', ...conf(t.dir)]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /reload refused/);
    assert.match(r.stderr, /\[mdserver\] imds_tokens = "sometimes": expected optional or required/);
    assert.match(r.stderr, /\[mdserver\] debug = "perhaps": expected a boolean/);
    const still = await request(t.port, '/latest/meta-data/local-hostname', { from: ip });
    assert.equal(still.status, 200);
    assert.equal(still.body, 'test1');
    const s = JSON.parse((await cli(['status', '--json', ...conf(t.dir)])).stdout) as { lastReload: { ok: boolean } };
    assert.equal(s.lastReload.ok, false);
  });
});

test('reload says that a new port needs a restart and keeps listening where it was', async () => {
  const t = await startTestServer();
  try {
    writeConfig(t.dir, { mdserver: { port: 1 } });
    const r = await cli(['reload', ...conf(t.dir)]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /needs a restart: \[mdserver\] port changed \(\d+ -> 1\): restart mdserver to apply it/);
    assert.equal((await request(t.port, '/service/name')).body, 'mdserver');
  } finally {
    await t.close();
  }
});

test('the admin socket is for its owner and group only, and the metadata port serves no admin paths', async () => {
  const t = await startTestServer();
  try {
    const socket = path.join(t.dir, 'run', 'admin.sock');
    assert.equal(t.running.adminSocket, socket);
    const st = fs.statSync(socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o660);
    for (const p of ['/instances', '/status', '/reload']) {
      assert.equal((await request(t.port, p)).status, 404, p);
    }
  } finally {
    await t.close();
  }
  assert.equal(fs.existsSync(path.join(t.dir, 'run', 'admin.sock')), false);
});

test('admin_socket = no turns the admin interface off, and the commands say so', async () => {
  const t = await startTestServer({ mdserver: { admin_socket: 'no' } });
  try {
    assert.equal(t.running.adminSocket, null);
    const r = await cli(['instances', 'list', ...conf(t.dir)]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /admin interface is disabled/);
  } finally {
    await t.close();
  }
});

test('a stale admin socket left by a dead server is replaced, and a live one is never taken over', async () => {
  const dir = tempDir();
  const socket = path.join(dir, 'run', 'admin.sock');
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  // A process that bound the socket and died without removing it.
  const py = spawnSync('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', socket]);
  assert.equal(py.status, 0, py.stderr?.toString());
  assert.ok(fs.statSync(socket).isSocket());
  const t = await startTestServer({}, dir);
  try {
    assert.equal((await cli(['status', '--json', ...conf(dir)])).stdout.includes('"pid"'), true);
    const other = tempDir();
    await assert.rejects(startTestServer({ mdserver: { admin_socket: socket } }, other), /admin socket .* is in use/);
    fs.rmSync(other, { recursive: true, force: true });
  } finally {
    await t.close();
  }
});

test('the admin commands explain a usage error and a server that is not running', async () => {
  const dir = tempDir();
  try {
    const usage = await cli(['instances', 'frobnicate']);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /expected list, show NAME, delete NAME, rekey NAME --uuid UUID or password NAME/);
    const flag = await cli(['status', '--colour']);
    assert.equal(flag.status, 2);
    assert.match(flag.stderr, /Unknown option '--colour'/);
    const help = await cli(['reload', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Usage: mdserver reload/);
    const down = await cli(['status', '--socket', path.join(dir, 'admin.sock')]);
    assert.equal(down.status, 1);
    assert.match(down.stderr, /cannot reach mdserver at .*admin\.sock: .*\(is mdserver running\?\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const hasVirsh = spawnSync('sh', ['-c', 'command -v virsh'], { stdio: 'ignore' }).status === 0;
if (!hasVirsh && process.env['CI'] === 'true') throw new Error('virsh is required under CI (Debian: libvirt-clients)');

/** A libvirt test-driver host: each domain is `[name, uuid, mac, network]`. */
function testHost(dir: string, domains: [string, string, string, string][]): string {
  const file = path.join(dir, 'libvirt-host.xml');
  const xml = domains.map(([name, uuid, mac, network]) => domainXml({ name, uuid, mac, network })
    .replace("<domain type='kvm' id='7'>", "<domain type='test'>")
    .replace(/<emulator>.*<\/emulator>/, '')
    .replace(" machine='pc-q35-7.2'", '')
    .replace(" bridge='br-mds'", ''));
  fs.writeFileSync(file, `<node>\n${xml.join('\n')}</node>\n`);
  return `test://${file}`;
}

test('sync registers every domain libvirt knows and skips those without an interface on the metadata network', { skip: hasVirsh ? false : 'needs virsh (libvirt-clients)' }, async () => {
  const extra: Sections = {};
  const t = await startTestServer(extra);
  try {
    const uri = testHost(t.dir, [
      ['alpha', '11111111-2222-4333-8444-555555555501', '52:54:00:aa:bb:01', 'mds'],
      ['web server', '11111111-2222-4333-8444-555555555502', '52:54:00:aa:bb:02', 'mds'],
      ['elsewhere', '11111111-2222-4333-8444-555555555503', '52:54:00:aa:bb:03', 'default'],
    ]);
    const first = await cli(['sync', '--connect', uri, ...conf(t.dir)]);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /^registered alpha 127\.1\.\d+\.\d+$/m);
    assert.match(first.stdout, /^registered web server 127\.1\.\d+\.\d+$/m);
    assert.match(first.stdout, /^skipped +11111111-2222-4333-8444-555555555503: domain elsewhere has no interface on network "mds"/m);
    assert.match(first.stdout, /3 domain\(s\): 2 registered, 0 updated, 1 skipped, 0 failed/);
    await waitFor('the synced VMs in the dhcp-hosts file', () => /52:54:00:aa:bb:02,id:\*,127\.1\.\d+\.\d+,web-server,/.test(dhcpHosts(t.dir)));

    const list = JSON.parse((await cli(['instances', 'list', '--json', ...conf(t.dir)])).stdout) as { name: string; ipv4: string }[];
    const again = await cli(['sync', '--connect', uri, ...conf(t.dir)]);
    assert.match(again.stdout, /3 domain\(s\): 0 registered, 2 updated, 1 skipped, 0 failed/);
    // A second sync keeps every address.
    const list2 = JSON.parse((await cli(['instances', 'list', '--json', ...conf(t.dir)])).stdout) as { name: string; ipv4: string }[];
    assert.deepEqual(list2.map((i) => [i.name, i.ipv4]), list.map((i) => [i.name, i.ipv4]));
  } finally {
    await t.close();
  }
});

test('sync fetches domains by uuid: a domain named --domain=alpha registers itself, not alpha', { skip: hasVirsh ? false : 'needs virsh (libvirt-clients)' }, async () => {
  const t = await startTestServer();
  try {
    // virsh reads `dumpxml --domain=alpha` as its --domain option: passing the name would upload
    // alpha's XML a second time, and the tenant's own domain never.
    const uri = testHost(t.dir, [
      ['alpha', '11111111-2222-4333-8444-555555555511', '52:54:00:aa:bb:11', 'mds'],
      ['--domain=alpha', '11111111-2222-4333-8444-555555555512', '52:54:00:aa:bb:12', 'mds'],
    ]);
    const r = await cli(['sync', '--connect', uri, ...conf(t.dir)]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^registered --domain=alpha 127\.1\.\d+\.\d+$/m);
    assert.match(r.stdout, /2 domain\(s\): 2 registered, 0 updated, 0 skipped, 0 failed/);
    const list = JSON.parse((await cli(['instances', 'list', '--json', ...conf(t.dir)])).stdout) as { name: string; uuid: string; mac: string }[];
    assert.deepEqual(list.map((i) => [i.name, i.uuid, i.mac]).sort(), [
      ['--domain=alpha', '11111111-2222-4333-8444-555555555512', '52:54:00:aa:bb:12'],
      ['alpha', '11111111-2222-4333-8444-555555555511', '52:54:00:aa:bb:11'],
    ]);
  } finally {
    await t.close();
  }
});

test('sync reports a libvirt it cannot reach and exits 1', { skip: hasVirsh ? false : 'needs virsh (libvirt-clients)' }, async () => {
  const t = await startTestServer();
  try {
    const r = await cli(['sync', '--connect', `test://${path.join(t.dir, 'missing.xml')}`, ...conf(t.dir)]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /mdserver sync: virsh -c test:\/\/.*missing\.xml list --all --uuid failed/);
  } finally {
    await t.close();
  }
});
