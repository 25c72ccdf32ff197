// POST /instance-upload: who may upload, what is recorded, and how bad documents are refused.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from './netns.js';
import { domainXml, request, startTestServer, upload, VM1, VM2, type TestServer } from './helpers.js';

const post = (srv: TestServer, body: string | Buffer, from = '127.0.0.1') =>
  request(srv.port, '/instance-upload', { method: 'POST', body, from, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });

describe('instance upload', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(() => srv.close());

  test('a new domain gets 201 and a reply naming it, its MAC and a fresh address in the network', async () => {
    const r = await post(srv, domainXml(VM1));
    assert.equal(r.status, 201);
    assert.match(r.body, /^registered test1 mac=52:54:00:3a:cf:41 ipv4=127\.1\.\d+\.\d+\n$/);
    const ip = /ipv4=(\S+)/.exec(r.body)![1]!;
    assert.notEqual(ip, '127.1.0.1', 'never the gateway');
    assert.notEqual(ip, '127.1.0.0');
    assert.notEqual(ip, '127.1.255.255');
  });

  test('uploading the same domain again keeps its address (the hook runs at every start)', async () => {
    const first = await upload(srv.port, VM2);
    const again = await post(srv, domainXml(VM2));
    assert.equal(again.status, 200);
    assert.match(again.body, new RegExp(`^updated test2 mac=52:54:00:11:22:33 ipv4=${first.replace(/\./g, '\\.')}\\n$`));
  });

  test('a renamed domain (same uuid) keeps its record and address', async () => {
    const spec = { name: 'before-rename', uuid: '11111111-2222-3333-4444-555555555555', mac: '52:54:00:aa:bb:01' };
    const ip = await upload(srv.port, spec);
    const r = await post(srv, domainXml({ ...spec, name: 'after-rename' }));
    assert.equal(r.status, 200);
    assert.ok(r.body.includes(`ipv4=${ip}`));
    assert.equal((await request(srv.port, '/latest/meta-data/hostname', { from: ip })).body, 'after-rename');
  });

  test('a MAC already held by another domain is a 409 naming both', async () => {
    const r = await post(srv, domainXml({ name: 'thief', uuid: '99999999-2222-3333-4444-555555555555', mac: VM1.mac }));
    assert.equal(r.status, 409);
    assert.match(r.body, /thief/);
    assert.match(r.body, /test1/);
  });

  test('the body is read whatever the content type, with newlines stripped as curl -d does', async () => {
    const spec = { name: 'flat', uuid: '22222222-2222-3333-4444-555555555555', mac: '52:54:00:aa:bb:02' };
    const r = await post(srv, domainXml(spec).replace(/\n/g, ''));
    assert.equal(r.status, 201);
  });

  test('mdserver: metadata is recorded and selects the userdata template', async () => {
    fs.mkdirSync(path.join(srv.dir, 'userdata', 'prefixes'), { recursive: true });
    fs.writeFileSync(path.join(srv.dir, 'userdata', 'prefixes', 'testing.yaml'), '#cloud-config\nhostname: testing-{{hostname}}\n');
    const spec = { name: 'meta', uuid: '33333333-2222-3333-4444-555555555555', mac: '52:54:00:aa:bb:03', metadata: { userdata_prefix: 'testing' } };
    const ip = await upload(srv.port, spec);
    const r = await request(srv.port, '/latest/user-data', { from: ip });
    assert.equal(r.body, '#cloud-config\nhostname: testing-meta\n');
  });

  test('uploads from anywhere but the host are refused with 401', async () => {
    const r = await post(srv, domainXml({ name: 'evil', uuid: '44444444-2222-3333-4444-555555555555', mac: '52:54:00:aa:bb:04' }), '127.1.0.77');
    assert.equal(r.status, 401);
    assert.equal(r.body, 'Unauthorised client: 127.1.0.77');
  });

  test('a domain with no interface on the metadata network is a 400 saying so, and nothing is stored', async () => {
    const r = await post(srv, domainXml({ name: 'elsewhere', uuid: '55555555-2222-3333-4444-555555555555', mac: '52:54:00:aa:bb:05', network: 'default' }));
    assert.equal(r.status, 400);
    assert.match(r.body, /no interface on network "mds"/);
    assert.equal(srv.running.store.byName('elsewhere'), undefined);
  });

  test('malformed XML and non-domain documents are 400s that say which', async () => {
    const bad = await post(srv, '<domain><name>x</name>');
    assert.equal(bad.status, 400);
    assert.match(bad.body, /malformed XML/);
    const notDomain = await post(srv, '<network><name>mds</name></network>');
    assert.equal(notDomain.status, 400);
    assert.match(notDomain.body, /not <domain>/);
    const noUuid = await post(srv, '<domain><name>x</name></domain>');
    assert.equal(noUuid.status, 400);
    assert.match(noUuid.body, /no <uuid>/);
  });

  test('a body over the limit is a 413', async () => {
    const r = await post(srv, 'x'.repeat(2 * 1024 * 1024));
    assert.equal(r.status, 413);
  });

  test('the dnsmasq host files list every registered domain', async () => {
    const file = path.join(srv.dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts');
    // Rewrites are coalesced during bursts, so the files follow within a fraction of a second.
    await waitFor('dhcp-hosts to list test2', () => fs.readFileSync(file, 'utf8').includes('test2'), 3000);
    const hosts = fs.readFileSync(file, 'utf8');
    assert.match(hosts, /^52:54:00:3a:cf:41,id:\*,127\.1\.\d+\.\d+,test1,86400$/m);
    assert.match(hosts, /^52:54:00:11:22:33,id:\*,127\.1\.\d+\.\d+,test2,86400$/m);
    const dns = fs.readFileSync(path.join(srv.dir, 'dnsmasq', 'dns', 'mds.dns-hosts'), 'utf8');
    assert.match(dns, /^127\.1\.\d+\.\d+ test1$/m);
  });
});

describe('address pool', () => {
  test('a full pool refuses the next upload clearly and stores nothing partial', async () => {
    // A /29 has 6 host addresses; the gateway takes one.
    const srv = await startTestServer({ dnsmasq: { net_address: '127.2.0.0', net_prefix: 29, gateway: '127.2.0.1' } });
    try {
      const ips = new Set<string>();
      for (let i = 0; i < 5; i++) {
        ips.add(await upload(srv.port, { name: `p${i}`, uuid: `00000000-0000-0000-0000-00000000000${i}`, mac: `52:54:00:00:00:0${i}` }));
      }
      assert.equal(ips.size, 5);
      assert.ok(!ips.has('127.2.0.1') && !ips.has('127.2.0.0') && !ips.has('127.2.0.7'));
      const r = await post(srv, domainXml({ name: 'p5', uuid: '00000000-0000-0000-0000-000000000005', mac: '52:54:00:00:00:05' }));
      assert.equal(r.status, 409);
      assert.match(r.body, /no free address/);
      assert.equal(srv.running.store.byName('p5'), undefined);
      assert.equal(srv.running.store.count(), 5);
    } finally {
      await srv.close();
    }
  });
});
