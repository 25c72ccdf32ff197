// Hostile and careless input: each gets a clear 4xx, the server keeps serving, and the database
// is unchanged.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { domainXml, request, startTestServer, startWithVms, upload, VM1, type TestServer } from './helpers.js';
import { waitFor } from './netns.js';

describe('hostile uploads', () => {
  let srv: TestServer;
  let vmIp: string;
  before(async () => {
    [srv, vmIp] = await startWithVms({}, [VM1]);
  });
  after(() => srv.close());

  const post = (body: string | Buffer) => request(srv.port, '/instance-upload', { method: 'POST', body });

  async function refused(body: string | Buffer, pattern: RegExp, status = 400): Promise<void> {
    const before = srv.running.store.count();
    const r = await post(body);
    assert.equal(r.status, status, r.body);
    assert.match(r.body, pattern);
    assert.equal(srv.running.store.count(), before, 'nothing stored');
    assert.equal((await request(srv.port, '/latest/meta-data/hostname', { from: vmIp })).body, 'test1', 'still serving');
  }

  const domain = (name: string, extra = '') =>
    `${extra}<domain><name>${name}</name><uuid>0a0a0a0a-0000-0000-0000-000000000001</uuid><devices><interface type='network'><mac address='52:54:00:0a:0a:01'/><source network='mds'/></interface></devices></domain>`;

  test('a billion-laughs DOCTYPE is refused without expanding anything', async () => {
    const lol = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>`;
    await refused(domain('&lol4;', lol), /DOCTYPE and entity declarations are not accepted/);
  });

  test('an external entity is never fetched', async () => {
    await refused(domain('&xxe;', `<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`), /DOCTYPE/);
  });

  test('a body that is not UTF-8 is refused', async () => {
    await refused(Buffer.concat([Buffer.from('<domain><name>'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('</name></domain>')]), /not UTF-8/);
  });

  test('malformed XML, a non-domain root, a missing name or uuid, an invalid MAC', async () => {
    await refused('<domain><name>x</name', /malformed XML/);
    await refused('<html><body>hi</body></html>', /not <domain>/);
    await refused('<domain/>', /the <domain> element is empty/);
    await refused('<domain><uuid>0a0a0a0a-0000-0000-0000-000000000001</uuid></domain>', /no <name>/);
    await refused('<domain><name>x</name></domain>', /no <uuid>/);
    await refused('<domain><name>x</name><uuid>not-a-uuid</uuid></domain>', /is not a UUID/);
    await refused(domain('x').replace('52:54:00:0a:0a:01', '52:54:00:0a:0a'), /invalid MAC/);
    await refused(domain('x').replace('52:54:00:0a:0a:01', 'zz:54:00:0a:0a:01'), /invalid MAC/);
  });

  test('names with a newline or "/" are refused', async () => {
    await refused(domain('bad\nname'), /the domain <name> contains U\+000A/);
    await refused(domain('etc/passwd'), /the domain <name> contains "\/"/);
  });

  test('names with a comma, space or # are mapped to safe host names, never written raw', async () => {
    const names = ['web server', 'a,b', 'db#1', '--x--'];
    const ips: string[] = [];
    for (const [i, name] of names.entries()) {
      ips.push(await upload(srv.port, { name, uuid: `0b0b0b0b-0000-0000-0000-00000000000${i}`, mac: `52:54:00:0b:0b:0${i}` }));
    }
    assert.equal((await request(srv.port, '/latest/meta-data/local-hostname', { from: ips[0] })).body, 'web-server');
    assert.equal((await request(srv.port, '/latest/meta-data/local-hostname', { from: ips[1] })).body, 'a-b');
    assert.equal((await request(srv.port, '/latest/meta-data/local-hostname', { from: ips[2] })).body, 'db-1');
    assert.equal((await request(srv.port, '/latest/meta-data/local-hostname', { from: ips[3] })).body, 'x');
    const dhcp = path.join(srv.dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts');
    await waitFor('the hosts files', () => fs.readFileSync(dhcp, 'utf8').includes(',x,'), 3000);
    for (const line of fs.readFileSync(dhcp, 'utf8').trim().split('\n')) {
      assert.match(line, /^[0-9a-f:]{17},id:\*,[0-9.]+,[A-Za-z0-9-]+,\d+$/, line);
    }
    for (const line of fs.readFileSync(path.join(srv.dir, 'dnsmasq', 'dns', 'mds.dns-hosts'), 'utf8').trim().split('\n')) {
      assert.match(line, /^[0-9.]+( [A-Za-z0-9.-]+)+$/, line);
    }
  });

  test('a body over the limit is a 413, even without a Content-Length', async () => {
    const before = srv.running.store.count();
    const r = await request(srv.port, '/instance-upload', { method: 'POST', body: Buffer.alloc(3 * 1024 * 1024, 'a'), headers: { 'Transfer-Encoding': 'chunked' } });
    assert.equal(r.status, 413);
    assert.equal(srv.running.store.count(), before);
  });
});

describe('hostile requests', () => {
  let srv: TestServer;
  let vmIp: string;
  before(async () => {
    [srv, vmIp] = await startWithVms({ mdserver: { admin_socket: '' } }, [VM1]);
  });
  after(() => srv.close());
  const get = (p: string, o: Parameters<typeof request>[2] = {}) => request(srv.port, p, { from: vmIp, ...o });

  test('unknown versions and paths, dot-dot and encoded slashes are 404 or 400, never 500', async () => {
    const paths = [
      '/1999-01-01/meta-data/', '/latest/../../etc/passwd', '/latest/meta-data/../user-data', '/latest/meta-data/%2e%2e/%2e%2e/',
      '/latest/meta-data%2Fhostname', '/latest/meta-data/public-keys/0%2Fopenssh-key', '/latest/meta-data/%zz', '/%00', '/latest/meta-data/hostname%00',
      '//latest//meta-data//', '/latest/meta-data/' + 'a/'.repeat(500),
    ];
    for (const p of paths) {
      const r = await get(p);
      assert.ok(r.status === 404 || r.status === 400 || (r.status === 200 && p === '//latest//meta-data//'), `${p} -> ${r.status}`);
    }
  });

  test('a very long URL is refused by the HTTP layer with a 4xx', async () => {
    const r = await get('/latest/meta-data/' + 'x'.repeat(100_000));
    assert.ok(r.status >= 400 && r.status < 500, String(r.status));
    assert.equal((await get('/latest/meta-data/hostname')).body, 'test1');
  });

  test('bad and oversized token headers are 401', async () => {
    for (const t of ['garbage', 'A'.repeat(54), 'A'.repeat(8000), '']) {
      const r = await get('/latest/meta-data/hostname', { headers: { 'X-aws-ec2-metadata-token': t } });
      assert.equal(r.status, 401, t.slice(0, 10));
    }
  });

  test('methods other than GET, HEAD and PUT are 405', async () => {
    for (const method of ['POST', 'DELETE', 'PATCH', 'OPTIONS']) {
      assert.equal((await get('/latest/meta-data/hostname', { method })).status, 405, method);
    }
    assert.equal((await get('/latest/api/token', { method: 'GET' })).status, 405);
  });

  test('uploads, configuration and health stay host-only even with forged X-Forwarded-For or Host', async () => {
    const forged = { 'X-Forwarded-For': '127.0.0.1', 'X-Real-IP': '127.0.0.1', Host: '127.0.0.1', Forwarded: 'for=127.0.0.1' };
    const up = await get('/instance-upload', { method: 'POST', headers: forged, body: domainXml({ name: 'x', uuid: '0c0c0c0c-0000-0000-0000-000000000001', mac: '52:54:00:0c:0c:01' }) });
    assert.equal(up.status, 401);
    assert.equal((await get('/service/configuration', { headers: forged })).status, 401);
    assert.equal((await get('/health', { headers: forged })).status, 401);
    assert.equal(srv.running.store.byName('x'), undefined);
  });

  test('the host sees what is degraded on /health', async () => {
    const r = await request(srv.port, '/health');
    assert.equal(r.status, 200);
    const h = JSON.parse(r.body) as { status: string; problems: string[]; instances: number };
    assert.equal(h.status, 'degraded');
    assert.ok(h.problems.some((p) => /dnsmasq is not running/.test(p)), h.problems.join('; '));
    assert.equal(h.instances, 1);
  });
});

describe('parallel uploads', () => {
  test('200 distinct domains uploaded at once get 200 distinct addresses', async () => {
    const srv = await startTestServer();
    try {
      const specs = Array.from({ length: 200 }, (_, i) => ({
        name: `par${i}`, uuid: `0d0d0d0d-0000-0000-0000-${String(i).padStart(12, '0')}`, mac: `52:54:00:0d:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
      }));
      const ips = await Promise.all(specs.map((s) => upload(srv.port, s)));
      assert.equal(new Set(ips).size, 200);
      assert.equal(srv.running.store.count(), 200);
    } finally {
      await srv.close();
    }
  });
});
