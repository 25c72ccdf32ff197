// The libvirt qemu hook (hooks/qemu), run exactly as libvirt runs it: arguments, the domain XML
// on stdin, and a look at its exit status, stdout and log lines.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { domainXml, startTestServer, tempDir, VM1, VM2 } from './helpers.js';
import { Netns, skipUnlessNetns } from './netns.js';
import { cli, HOOK, run } from './process.js';

/** Runs the hook with a defaults file pointing at `url`; logs go to stderr for the assertions. */
async function hook(dir: string, url: string, args: string[], xml: string, extra = ''): Promise<Awaited<ReturnType<typeof run>>> {
  const defaults = path.join(dir, 'default-mdserver');
  fs.writeFileSync(defaults, `# as the installer writes it\nMDSERVER_URL="${url}"\n${extra}`);
  return run(HOOK, args, { input: xml, env: { MDSERVER_DEFAULTS: defaults, MDSERVER_HOOK_SYSLOG: 'no' } });
}

async function show(dir: string, name: string): Promise<{ status: number | null; body: Record<string, unknown> | null }> {
  const r = await cli(['instances', 'show', name, '--json', '--config', path.join(dir, 'mdserver.conf')]);
  return { status: r.status, body: r.status === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : null };
}

test('the hook registers a domain on prepare, migrate, restore and reconnect, printing nothing on stdout', async () => {
  const t = await startTestServer();
  try {
    const url = `http://127.0.0.1:${t.port}`;
    const ops: [string, typeof VM1][] = [
      ['prepare', VM1],
      ['migrate', VM2],
      ['restore', { name: 'test3', uuid: '3f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mac: '52:54:00:11:22:44' }],
      ['reconnect', { name: 'test4', uuid: '4f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mac: '52:54:00:11:22:55' }],
    ];
    for (const [op, vm] of ops) {
      const r = await hook(t.dir, url, [vm.name, op, 'begin', '-'], domainXml(vm));
      assert.equal(r.status, 0, `${op}: ${r.stderr}`);
      // For migrate and restore libvirt would take any stdout as a replacement domain XML.
      assert.equal(r.stdout, '', op);
      assert.match(r.stderr, new RegExp(`mdserver-hook: ${op} ${vm.name}: registered ${vm.name} mac=${vm.mac} ipv4=127\\.1\\.`));
      const s = await show(t.dir, vm.name);
      assert.equal(s.status, 0, `${vm.name} registered by ${op}`);
      assert.equal(s.body?.['mac'], vm.mac);
    }
  } finally {
    await t.close();
  }
});

test('the hook ignores every other operation and exits 0 without contacting mdserver', async () => {
  const t = await startTestServer();
  try {
    const url = `http://127.0.0.1:${t.port}`;
    for (const args of [['start', 'begin'], ['started', 'begin'], ['stopped', 'end'], ['release', 'end'], ['prepare', 'end'], ['migrate', 'end'], ['attach', 'begin']]) {
      const r = await hook(t.dir, url, [VM1.name, ...args, '-'], domainXml(VM1));
      assert.equal(r.status, 0);
      assert.equal(r.stdout + r.stderr, '', args.join(' '));
    }
    assert.equal((await show(t.dir, VM1.name)).status, 1);
  } finally {
    await t.close();
  }
});

test('the hook sends the XML byte for byte, newlines included', async () => {
  const t = await startTestServer();
  try {
    // md_server's `curl -d @file` dropped newlines, which joined the lines of a value like this one
    // into "first linesecond line". Sent intact, the newline reaches mdserver, which refuses a value
    // that could add lines to user-data, naming it.
    const xml = domainXml({ ...VM1, metadata: { motd: 'first line\nsecond line' } });
    const r = await hook(t.dir, `http://127.0.0.1:${t.port}`, [VM1.name, 'prepare', 'begin', '-'], xml);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /mdserver refused the domain \(400\): the value of <mdserver:motd> contains U\+000A/);
    assert.equal((await show(t.dir, VM1.name)).status, 1);
  } finally {
    await t.close();
  }
});

test('the hook logs a refused domain and still exits 0', async () => {
  const t = await startTestServer();
  try {
    const r = await hook(t.dir, `http://127.0.0.1:${t.port}`, [VM1.name, 'prepare', 'begin', '-'], domainXml({ ...VM1, network: 'default' }));
    assert.equal(r.status, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /mdserver-hook: prepare test1: mdserver refused the domain \(400\): domain test1 has no interface on network "mds"/);
  } finally {
    await t.close();
  }
});

test('a domain name carrying a status marker does not change what the hook logs', async () => {
  const t = await startTestServer();
  try {
    const url = `http://127.0.0.1:${t.port}`;
    // The reply quotes the domain name. Before, the status was read from a marker in the same text
    // as the reply, so a refused domain with the marker in its name was logged as registered...
    const refused = { name: 'spoof #mdserver-status=201#', uuid: '6f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mac: '52:54:00:11:22:77', network: 'default' };
    const r1 = await hook(t.dir, url, [refused.name, 'prepare', 'begin', '-'], domainXml(refused));
    assert.equal(r1.status, 0);
    assert.equal(r1.stdout, '');
    assert.match(r1.stderr, /^mdserver-hook: prepare spoof #mdserver-status=201#: mdserver refused the domain \(400\): domain spoof #mdserver-status=201# has no interface on network "mds"/m);
    // ...and a registered one as unreachable.
    const registered = { name: 'fine #mdserver-status=000#', uuid: '7f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mac: '52:54:00:11:22:88' };
    const r2 = await hook(t.dir, url, [registered.name, 'prepare', 'begin', '-'], domainXml(registered));
    assert.equal(r2.status, 0);
    assert.match(r2.stderr, /^mdserver-hook: prepare fine #mdserver-status=000#: registered fine #mdserver-status=000# mac=52:54:00:11:22:88 ipv4=127\.1\.\d+\.\d+$/m);
    assert.doesNotMatch(r2.stderr, /cannot reach/);
  } finally {
    await t.close();
  }
});

test('with MDSERVER_SOCKET the hook uploads over the admin socket, whatever the metadata port does', async () => {
  const t = await startTestServer();
  try {
    // Nothing listens on port 9: a registration can only have come through the socket.
    const r = await hook(t.dir, 'http://127.0.0.1:9', [VM1.name, 'prepare', 'begin', '-'], domainXml(VM1), `MDSERVER_SOCKET=${t.running.adminSocket}\n`);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^mdserver-hook: prepare test1: registered test1 mac=52:54:00:3a:cf:41 ipv4=127\.1\.\d+\.\d+$/m);
    const refused = await hook(t.dir, 'http://127.0.0.1:9', [VM2.name, 'prepare', 'begin', '-'], domainXml({ ...VM2, network: 'default' }), `MDSERVER_SOCKET=${t.running.adminSocket}\n`);
    assert.match(refused.stderr, /mdserver refused the domain \(400\): domain test2 has no interface on network "mds"/);
    assert.equal((await show(t.dir, VM2.name)).status, 1, 'a refusal is an answer: no second try over HTTP');
  } finally {
    await t.close();
  }
});

test('the hook falls back to HTTP when the admin socket is missing or does not answer', async () => {
  const t = await startTestServer();
  try {
    const url = `http://127.0.0.1:${t.port}`;
    const missing = path.join(t.dir, 'no-such.sock');
    const r1 = await hook(t.dir, url, [VM1.name, 'prepare', 'begin', '-'], domainXml(VM1), `MDSERVER_SOCKET=${missing}\n`);
    assert.match(r1.stderr, new RegExp(`registered test1 .* \\(no socket at ${missing.replace(/[.]/g, '\\.')}\\)$`, 'm'));
    // A socket file nobody accepts on, as a crashed mdserver leaves behind.
    const stale = path.join(t.dir, 'stale.sock');
    const made = await run('/usr/bin/python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', stale]);
    assert.equal(made.status, 0, made.stderr);
    const r2 = await hook(t.dir, url, [VM2.name, 'prepare', 'begin', '-'], domainXml(VM2), `MDSERVER_SOCKET=${stale}\n`);
    assert.match(r2.stderr, /registered test2 .* \(not through .*stale\.sock: curl: \(7\)/);
    assert.equal((await show(t.dir, VM2.name)).status, 0);
  } finally {
    await t.close();
  }
});

test('the hook sends the upload token from MDSERVER_TOKEN_FILE, never on curl\'s command line', async () => {
  const dir = tempDir();
  const token = 'a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8';
  const tokenFile = path.join(dir, 'upload-token');
  fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o640 });
  const t = await startTestServer({ mdserver: { upload_token_file: tokenFile } }, dir);
  try {
    const url = `http://127.0.0.1:${t.port}`;
    // Without the file the upload is refused, and the hook says why.
    const denied = await hook(t.dir, url, [VM1.name, 'prepare', 'begin', '-'], domainXml(VM1), `MDSERVER_TOKEN_FILE=${path.join(dir, 'none')}\n`);
    assert.match(denied.stderr, /mdserver refused the domain \(401\): Unauthorised: an upload needs the header "Authorization: Bearer/);
    // curl as found on PATH, through a shim that writes down the arguments every local user
    // could read in the process list, then runs the real curl.
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    const real = (await run('sh', ['-c', 'command -v curl'])).stdout.trim();
    fs.writeFileSync(path.join(bin, 'curl'), `#!/bin/sh\nprintf '%s\\n' "$@" >> ${dir}/argv\nexec ${real} "$@"\n`, { mode: 0o755 });
    const defaults = path.join(dir, 'default-mdserver');
    fs.writeFileSync(defaults, `MDSERVER_URL=${url}\nMDSERVER_TOKEN_FILE=${tokenFile}\n`);
    const r = await run(HOOK, [VM1.name, 'prepare', 'begin', '-'], {
      input: domainXml(VM1), env: { MDSERVER_DEFAULTS: defaults, MDSERVER_HOOK_SYSLOG: 'no', PATH: `${bin}:${process.env['PATH'] ?? ''}` },
    });
    assert.match(r.stderr, /registered test1 mac=52:54:00:3a:cf:41/);
    const argv = fs.readFileSync(path.join(dir, 'argv'), 'utf8');
    assert.match(argv, /^-H\n@\/dev\/fd\/\d+$/m, 'the header comes from a descriptor');
    assert.doesNotMatch(argv, new RegExp(token.slice(0, 16)));
  } finally {
    await t.close();
  }
});

test('the hook gives up quickly and exits 0 when mdserver is not running', async () => {
  const dir = tempDir();
  try {
    // A port nobody listens on: the connection is refused at once.
    const probe = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => probe.once('listening', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const r = await hook(dir, `http://127.0.0.1:${port}`, [VM1.name, 'prepare', 'begin', '-'], domainXml(VM1));
    assert.equal(r.status, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`mdserver-hook: prepare test1: cannot reach mdserver at http://127\\.0\\.0\\.1:${port}/instance-upload`));
    assert.ok(r.ms < 2000, `took ${r.ms} ms`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the hook stops waiting for a server that accepts but never answers after MDSERVER_MAX_TIME', async () => {
  const dir = tempDir();
  const sockets: net.Socket[] = [];
  const stuck = net.createServer((s) => sockets.push(s)).listen(0, '127.0.0.1');
  try {
    await new Promise((r) => stuck.once('listening', r));
    const port = (stuck.address() as net.AddressInfo).port;
    const r = await hook(dir, `http://127.0.0.1:${port}`, [VM1.name, 'prepare', 'begin', '-'], domainXml(VM1), 'MDSERVER_MAX_TIME=2\n');
    assert.equal(r.status, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /cannot reach mdserver .*(timed out|Timeout)/i);
    assert.ok(r.ms >= 1900 && r.ms < 4500, `took ${r.ms} ms`);
  } finally {
    for (const s of sockets) s.destroy();
    stuck.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the hook ignores anything but its own settings in the defaults file', async () => {
  const dir = tempDir();
  try {
    const r = await hook(dir, 'http://127.0.0.1:9', [VM1.name, 'prepare', 'begin', '-'], domainXml(VM1),
      `MDSERVER_CONNECT_TIMEOUT=$(touch ${dir}/ran)\nMDSERVER_MAX_TIME=soon\ntouch ${dir}/ran2\n`);
    assert.equal(r.status, 0);
    assert.match(r.stderr, /cannot reach mdserver at http:\/\/127\.0\.0\.1:9\/instance-upload/);
    assert.equal(fs.existsSync(path.join(dir, 'ran')), false);
    assert.equal(fs.existsSync(path.join(dir, 'ran2')), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('without a defaults file the hook posts to http://169.254.169.254', skipUnlessNetns(['curl']), async () => {
  // Inside an empty namespace nothing is routed, so the attempt fails at once and no packet leaves.
  const ns = Netns.create('mdshook');
  try {
    const r = ns.try('env', ['MDSERVER_DEFAULTS=/nonexistent', 'MDSERVER_HOOK_SYSLOG=no', HOOK, VM1.name, 'prepare', 'begin', '-'], domainXml(VM1), 15000);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /cannot reach mdserver at http:\/\/169\.254\.169\.254\/instance-upload/);
  } finally {
    ns.delete();
  }
});
