// The CloudStack style over HTTP on loopback: its meta-data keys, the gateway listener, the
// password server's protocol and what a VM may not do with it, and `mdserver instances password`.

import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLOUDSTACK_PASSWORD } from '../src/server.js';
import { request, startTestServer, startWithVms, tempDir, TEST_NET, VM1, VM2, withVms, type TestServer } from './helpers.js';
import { cli, MDSERVER, run } from './process.js';

const CS = { cloudstack: { enabled: 'yes', password_port: 0 } };

/** The port of the password server on `address`. */
function pwPort(srv: TestServer, address: string): number {
  const l = srv.running.services.listeners.states().find((s) => s.label === CLOUDSTACK_PASSWORD && s.address === address);
  assert.ok(l?.bound, `no password server on ${address}`);
  return l.port;
}

const ask = (srv: TestServer, from: string, what: string | undefined, o: { address?: string; headers?: Record<string, string> } = {}) => {
  const address = o.address ?? '127.0.0.1';
  return request(pwPort(srv, address), '/', { from, host: address, headers: { ...(what === undefined ? {} : { DomU_Request: what }), ...o.headers } });
};

describe('the CloudStack style', () => {
  let srv: TestServer;
  let ip1: string;
  let ip2: string;
  const socketArgs = () => ['--socket', path.join(srv.dir, 'run', 'admin.sock')];

  before(async () => {
    [srv, ip1, ip2] = await startWithVms({ ...CS, 'instance-defaults': { instance_type: 'm1.small' }, service: { location: 'rack7' } }, [VM1, VM2]);
  });
  after(() => srv.close());

  test("latest/meta-data gains CloudStack's keys, with the local values for the public ones", async () => {
    const listing = (await request(srv.port, '/latest/meta-data/', { from: ip1 })).body.split('\n');
    for (const k of ['availability-zone', 'cloud-identifier', 'instance-id', 'local-hostname', 'local-ipv4', 'public-hostname',
      'public-ipv4', 'public-keys/', 'service-offering', 'vm-id']) assert.ok(listing.includes(k), `${k} missing from ${listing.join(' ')}`);
    const get = async (k: string) => (await request(srv.port, `/latest/meta-data/${k}`, { from: ip1 })).body;
    assert.equal(await get('vm-id'), VM1.uuid);
    assert.equal(await get('service-offering'), 'm1.small');
    assert.equal(await get('availability-zone'), 'mds-local-1a');
    assert.equal(await get('public-ipv4'), ip1);
    assert.equal(await get('public-hostname'), 'test1');
    assert.equal(await get('cloud-identifier'), 'CloudStack-{rack7}');
  });

  test('public-keys is the keys themselves as a plain value, and the 0=name listing as a directory', async () => {
    const plain = await request(srv.port, '/latest/meta-data/public-keys', { from: ip1 });
    assert.equal(plain.body, 'ssh-ed25519 AAAAdefaultkey user@host\nssh-rsa AAAAsecondkey other@host');
    const dir = await request(srv.port, '/latest/meta-data/public-keys/', { from: ip1 });
    assert.equal(dir.body, '0=default\n1=second');
    assert.equal((await request(srv.port, '/latest/meta-data/public-keys/1/openssh-key', { from: ip1 })).body, 'ssh-rsa AAAAsecondkey other@host');
  });

  test('the metadata is served on the gateway address too, to the same callers by the same rules', async () => {
    const r = await request(srv.port, '/latest/meta-data/instance-id', { from: ip1, host: TEST_NET.gateway });
    assert.equal(r.status, 200);
    assert.equal(r.body, `i-${ip1}`);
    assert.equal((await request(srv.port, '/latest/meta-data/instance-id', { from: '127.1.200.200', host: TEST_NET.gateway })).status, 400);
  });

  test('a password set with `mdserver instances password` is handed out to its VM until it acknowledges it', async () => {
    const set = await cli(['instances', 'password', 'test1', ...socketArgs()], {});
    assert.equal(set.status, 1, 'no password on stdin is refused');
    const ok = await run(process.execPath, [MDSERVER, 'instances', 'password', 'test1', ...socketArgs()], { input: 'Secr3t-pw\n' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.doesNotMatch(ok.stdout, /Secr3t/);
    const show = await cli(['instances', 'show', 'test1', ...socketArgs()]);
    assert.match(show.stdout, /^password:\s+pending$/m);
    assert.doesNotMatch(show.stdout + (await cli(['instances', 'show', 'test1', '--json', ...socketArgs()])).stdout, /Secr3t/);
    for (const address of ['127.0.0.1', TEST_NET.gateway]) {
      const r = await ask(srv, ip1, 'send_my_password', { address });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'Secr3t-pw');
    }
    assert.equal((await ask(srv, ip2, 'send_my_password')).body, 'saved_password', 'another VM never gets it');
    assert.equal((await ask(srv, ip2, 'saved_password')).body, 'saved_password');
    assert.equal((await ask(srv, ip1, 'send_my_password')).body, 'Secr3t-pw', "another VM's acknowledgement deletes nothing of it");
    assert.equal((await ask(srv, ip1, 'saved_password')).body, 'saved_password');
    assert.equal((await ask(srv, ip1, 'send_my_password')).body, 'saved_password');
    assert.match((await cli(['instances', 'show', 'test1', ...socketArgs()])).stdout, /^password:\s+-$/m);
  });

  test('--generate prints a new random password each time, which the VM then gets', async () => {
    const a = await cli(['instances', 'password', 'test2', '--generate', ...socketArgs()]);
    const b = await cli(['instances', 'password', 'test2', '--generate', ...socketArgs()]);
    assert.equal(a.status, 0, a.stderr);
    assert.match(a.stdout.trim(), /^[A-Za-z0-9]{20}$/);
    assert.notEqual(a.stdout, b.stdout);
    assert.equal((await ask(srv, ip2, 'send_my_password')).body, b.stdout.trim(), 'the newer one replaces the older');
    await ask(srv, ip2, 'saved_password');
  });

  test('an unknown instance, or a password of the protocol\'s own words, is refused by the command', async () => {
    const none = await cli(['instances', 'password', 'nosuchvm', '--generate', ...socketArgs()]);
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no instance named "nosuchvm"/);
    const word = await run(process.execPath, [MDSERVER, 'instances', 'password', 'test1', ...socketArgs()], { input: 'saved_password' });
    assert.equal(word.status, 1);
    assert.match(word.stderr, /answer of the password protocol/);
  });

  test('unknown requests get bad_request, and header tricks do not pass for a request', async () => {
    await srv.running.services.passwords.set('test1', 'pw-for-test1');
    assert.deepEqual([(await ask(srv, ip1, undefined)).status, (await ask(srv, ip1, undefined)).body], [400, 'bad_request']);
    assert.equal((await ask(srv, ip1, 'give_me_everything')).body, 'bad_request');
    // Sent twice, Node joins the values: neither request is taken.
    const twice = await new Promise<string>((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port: pwPort(srv, '127.0.0.1'), localAddress: ip1 }, () => {
        sock.end('GET / HTTP/1.1\r\nHost: x\r\nDomU_Request: saved_password\r\nDomU_Request: send_my_password\r\nConnection: close\r\n\r\n');
      });
      let b = '';
      sock.on('data', (c: Buffer) => (b += c.toString()));
      sock.on('end', () => resolve(b));
      sock.on('error', reject);
    });
    assert.match(twice, /^HTTP\/1.1 400 [^]*\r\n\r\nbad_request$/);
    const proxied = await ask(srv, ip1, 'send_my_password', { headers: { 'X-Forwarded-For': ip2 } });
    assert.equal(proxied.status, 403, 'a request relayed by a proxy on the VM is refused');
    assert.doesNotMatch(proxied.body, /pw-for-test1/);
    assert.equal((await ask(srv, '127.1.250.1', 'send_my_password')).status, 400, 'an unknown address gets nothing');
    assert.equal((await request(pwPort(srv, '127.0.0.1'), '/', { from: ip1, method: 'POST', headers: { DomU_Request: 'send_my_password' } })).status, 405);
    assert.equal((await request(pwPort(srv, '127.0.0.1'), '/etc/passwd', { from: ip1, headers: { DomU_Request: 'send_my_password' } })).status, 404);
    assert.equal((await ask(srv, ip1, 'send_my_password')).body, 'pw-for-test1', 'none of it touched the password');
    await ask(srv, ip1, 'saved_password');
  });
});

test('a flood of password requests is rate limited like the metadata port, and the password is still there', async () => {
  // One token a second: the bucket is still empty when the metadata request follows, even on a
  // loaded machine where the flood takes a second or more.
  await withVms({ ...CS, mdserver: { rate_limit: 1, rate_burst: 10 } }, [VM1], async (srv, ip) => {
    await srv.running.services.passwords.set('test1', 'flood-pw');
    const statuses = await Promise.all(Array.from({ length: 60 }, () => ask(srv, ip, 'saved_password').then((r) => r.status)));
    assert.ok(statuses.filter((s) => s === 429).length >= 45, statuses.join(','));
    assert.equal((await request(srv.port, '/latest/meta-data/instance-id', { from: ip })).status, 429, 'one bucket for both ports');
  });
});

test('a password survives a restart of mdserver, and expires after password_ttl', async () => {
  const dir = tempDir();
  const [first, ip] = await startWithVms({ ...CS, cloudstack: { ...CS.cloudstack, password_ttl: 2 } }, [VM1], dir);
  await first.running.services.passwords.set('test1', 'kept-pw');
  await first.running.close();
  const second = await startTestServer({ ...CS, cloudstack: { ...CS.cloudstack, password_ttl: 2 } }, dir);
  try {
    assert.equal((await ask(second, ip, 'send_my_password')).body, 'kept-pw');
    await new Promise((r) => setTimeout(r, 2100));
    assert.equal((await ask(second, ip, 'send_my_password')).body, 'saved_password');
  } finally {
    await second.close();
  }
});

test('without [cloudstack] enabled there are no CloudStack keys, no password server and no gateway listener', async () => {
  await withVms({}, [VM1], async (srv, ip) => {
    assert.deepEqual(srv.running.services.listeners.states().map((l) => l.label), ['metadata']);
    assert.equal((await request(srv.port, '/latest/meta-data/vm-id', { from: ip })).status, 404);
    assert.equal((await request(srv.port, '/latest/meta-data/public-keys', { from: ip })).body, '0=default\n1=second');
    await assert.rejects(request(srv.port, '/latest/meta-data/instance-id', { from: ip, host: TEST_NET.gateway }), /ECONNREFUSED/);
  });
});

test('a CloudStack listener that cannot bind yet is retried, shown as degraded meanwhile, and serves once it binds', async () => {
  // Another program holds the password port on the gateway when mdserver starts.
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, TEST_NET.gateway, r));
  const port = (blocker.address() as net.AddressInfo).port;
  const dir = tempDir();
  const [srv, ip] = await startWithVms({ cloudstack: { enabled: 'yes', password_port: port } }, [VM1], dir);
  const config = ['--config', path.join(srv.dir, 'mdserver.conf')];
  try {
    // The metadata is served meanwhile, on the metadata address and on the gateway.
    assert.equal((await request(srv.port, '/latest/meta-data/local-ipv4', { from: ip })).body, ip);
    assert.equal((await request(srv.port, '/latest/meta-data/local-ipv4', { from: ip, host: TEST_NET.gateway })).body, ip);
    const health = JSON.parse((await request(srv.port, '/health')).body) as { status: string; problems: string[] };
    assert.equal(health.status, 'degraded');
    assert.match(health.problems.join('\n'), new RegExp(`cloudstack password listener 127\\.1\\.0\\.1 port ${port} is not bound \\(retrying\\): .*EADDRINUSE`));
    const status = await cli(['status', ...config]);
    assert.equal(status.status, 1, 'degraded while a CloudStack listener waits');
    assert.match(status.stdout, new RegExp(`^cloudstack password:\\s+127\\.1\\.0\\.1:${port} NOT BOUND \\(retrying\\)`, 'm'));

    await new Promise<void>((r) => blocker.close(() => r()));
    const deadline = Date.now() + 15000;
    while (srv.running.services.listeners.problems().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    // Bound now: no listener among the problems (dnsmasq is not run by this test, so the server
    // stays degraded for that reason alone).
    const after = JSON.parse((await request(srv.port, '/health')).body) as { problems: string[] };
    assert.deepEqual(after.problems.filter((p) => p.includes('listener')), []);
    const healthy = await cli(['status', ...config]);
    assert.doesNotMatch(healthy.stdout, /NOT BOUND/);
    assert.match(healthy.stdout, new RegExp(`^cloudstack password:\\s+127\\.1\\.0\\.1:${port}$`, 'm'));
    assert.match(healthy.stdout, /^cloudstack metadata:\s+127\.1\.0\.1:\d+$/m);
    assert.equal((await request(port, '/', { from: ip, host: TEST_NET.gateway, headers: { DomU_Request: 'send_my_password' } })).body, 'saved_password');
  } finally {
    blocker.close();
    await srv.close();
  }
});
