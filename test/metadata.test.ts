// The EC2 metadata paths as md_server served them, for known and unknown callers.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request, startTestServer, startWithVms, VM1, VM2, type TestServer } from './helpers.js';

describe('EC2 metadata over HTTP', () => {
  let srv: TestServer;
  let ip1: string;
  let ip2: string;

  before(async () => {
    [srv, ip1, ip2] = await startWithVms({ service: { ec2_versions: '2009-04-04, latest' } }, [VM1, VM2]);
  });
  after(() => srv.close());

  const get = (path: string, from: string) => request(srv.port, path, { from });

  test('the root lists each configured version with a trailing slash', async () => {
    const r = await get('/', ip1);
    assert.equal(r.status, 200);
    assert.equal(r.body, '2009-04-04/\nlatest/');
    assert.match(String(r.headers['content-type']), /^text\/plain/);
  });

  test('a version lists dynamic/, meta-data/ and user-data', async () => {
    for (const p of ['/2009-04-04/', '/latest/', '/latest']) {
      const r = await get(p, ip1);
      assert.equal(r.status, 200, p);
      assert.equal(r.body, 'dynamic/\nmeta-data/\nuser-data', p);
    }
  });

  test('meta-data lists the keys it serves, public-keys as a directory', async () => {
    const r = await get('/2009-04-04/meta-data/', ip1);
    assert.equal(r.status, 200);
    const lines = r.body.split('\n');
    for (const k of ['hostname', 'instance-id', 'local-hostname', 'local-ipv4', 'public-keys/', 'placement/']) {
      assert.ok(lines.includes(k), `${k} listed in ${r.body}`);
    }
    assert.ok(!r.body.endsWith('\n'));
  });

  test('hostname and local-hostname are the domain name, without a trailing newline', async () => {
    assert.equal((await get('/latest/meta-data/hostname', ip1)).body, 'test1');
    assert.equal((await get('/latest/meta-data/local-hostname', ip1)).body, 'test1');
    assert.equal((await get('/latest/meta-data/hostname', ip2)).body, 'test2');
  });

  test('instance-id is i-<client address>, as md_server made it', async () => {
    const r = await get('/2009-04-04/meta-data/instance-id', ip1);
    assert.equal(r.body, `i-${ip1}`);
  });

  test('public keys are listed N=name in config order and served as openssh-key', async () => {
    assert.equal((await get('/latest/meta-data/public-keys/', ip1)).body, '0=default\n1=second');
    assert.equal((await get('/latest/meta-data/public-keys/0/', ip1)).body, 'openssh-key');
    assert.equal((await get('/latest/meta-data/public-keys/0', ip1)).body, 'openssh-key');
    assert.equal((await get('/latest/meta-data/public-keys/0/openssh-key', ip1)).body, 'ssh-ed25519 AAAAdefaultkey user@host');
    assert.equal((await get('/latest/meta-data/public-keys/1/openssh-key', ip1)).body, 'ssh-rsa AAAAsecondkey other@host');
  });

  test('out-of-range and non-numeric key indexes are 404, not 500', async () => {
    for (const p of ['/latest/meta-data/public-keys/2/', '/latest/meta-data/public-keys/2/openssh-key', '/latest/meta-data/public-keys/x/openssh-key', '/latest/meta-data/public-keys/-1']) {
      assert.equal((await get(p, ip1)).status, 404, p);
    }
  });

  test('unknown paths and versions are 404 naming the path', async () => {
    const r = await get('/latest/meta-data/no-such-key', ip1);
    assert.equal(r.status, 404);
    assert.equal(r.body, 'Resource not found: /latest/meta-data/no-such-key');
    assert.equal((await get('/2016-09-02/meta-data/instance-id', ip1)).status, 404);
    assert.equal((await get('/nothing-here', ip1)).status, 404);
  });

  test('user-data is the rendered built-in template when no template matches', async () => {
    const r = await get('/latest/user-data', ip1);
    assert.equal(r.status, 200);
    assert.match(r.body, /^#cloud-config\n/);
    assert.match(r.body, /\nhostname: "test1"\n/);
    assert.match(r.body, / {2}- "ssh-ed25519 AAAAdefaultkey user@host"\n/);
  });

  test('an unknown caller gets 400 "Unknown client" for anything instance-specific', async () => {
    for (const p of ['/latest/meta-data/', '/latest/meta-data/hostname', '/latest/user-data', '/2009-04-04/meta-data/instance-id']) {
      const r = await get(p, '127.1.200.200');
      assert.equal(r.status, 400, p);
      assert.equal(r.body, 'Unknown client: 127.1.200.200');
    }
    assert.equal((await get('/', '127.1.200.200')).status, 200);
  });

  test('HEAD answers like GET without a body; other methods are 405 with Allow', async () => {
    const h = await request(srv.port, '/latest/meta-data/hostname', { from: ip1, method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.body, '');
    const d = await request(srv.port, '/latest/meta-data/hostname', { from: ip1, method: 'DELETE' });
    assert.equal(d.status, 405);
    assert.equal(d.headers['allow'], 'GET, HEAD');
  });
});

describe('/service/', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({
      mdserver: { password: '$6$secret-hash' },
      'template-data': { api_token: 'very-secret', _config_items_: 'dnsmasq.gateway' },
      service: { location: 'rack7', ec2_versions: '2009-04-04,latest' },
    });
  });
  after(() => srv.close());

  test('lists and serves name, type, version, location and ec2_versions', async () => {
    const from = '127.1.0.9';
    assert.equal((await request(srv.port, '/service/', { from })).body, 'name\ntype\nversion\nlocation\nec2_versions');
    assert.equal((await request(srv.port, '/service/name', { from })).body, 'mdserver');
    assert.equal((await request(srv.port, '/service/type', { from })).body, 'mdserver');
    assert.equal((await request(srv.port, '/service/location', { from })).body, 'rack7');
    assert.match((await request(srv.port, '/service/version', { from })).body, /^\d+\.\d+\.\d+ \(\d{4}-\d{2}-\d{2}\)$/);
    assert.equal((await request(srv.port, '/service/ec2_versions', { from })).body, '2009-04-04\nlatest');
  });

  test('configuration answers the host only, and never shows secrets', async () => {
    const vm = await request(srv.port, '/service/configuration', { from: '127.1.0.9' });
    assert.equal(vm.status, 401);
    assert.equal(vm.body, 'Unauthorised client: 127.1.0.9');
    const host = await request(srv.port, '/service/configuration', { from: '127.0.0.1' });
    assert.equal(host.status, 200);
    assert.match(host.body, /^dnsmasq\.gateway=127\.1\.0\.1$/m);
    assert.match(host.body, /^service\.location=rack7$/m);
    for (const secret of ['$6$secret-hash', 'AAAAdefaultkey', 'AAAAsecondkey', 'very-secret']) {
      assert.ok(!host.body.includes(secret), `configuration leaks ${secret}`);
    }
  });
});
