// A GET-only SSRF inside a VM: a web application on the VM that fetches any URL it is given, or
// a proxy on the VM that relays requests. Both come from the VM's own address, so the source
// address cannot refuse them; the headers a proxy adds can, on every format, and with
// `imds_tokens = required` every format needs a header such an SSRF cannot set.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { domainXml, request, startWithVms, VM1, type TestServer } from './helpers.js';
import { MDSERVER, run } from './process.js';

const SECRET = 'db_password: hunter2';
const USERDATA = `#cloud-config\n# ${SECRET}\n`;
const TTL = 'X-aws-ec2-metadata-token-ttl-seconds';

/** The paths that hand out a VM's secrets, in each format. */
const SECRET_PATHS = ['/latest/user-data', '/openstack/latest/user_data', '/nocloud/user-data'];
const INSTANCE_PATHS = [...SECRET_PATHS, '/latest/meta-data/instance-id', '/openstack/latest/meta_data.json', '/nocloud/meta-data'];
const PROXY_HEADERS: Record<string, string>[] = [
  { 'X-Forwarded-For': '10.0.0.9' },
  { Forwarded: 'for=10.0.0.9;proto=http' },
  { Via: '1.1 squid' },
];

async function withUserdata(extra: Record<string, Record<string, string>>): Promise<[TestServer, string]> {
  const [srv, ip] = await startWithVms(extra, [VM1]);
  fs.writeFileSync(path.join(srv.dir, 'userdata', `${VM1.name}.yaml`), USERDATA);
  return [srv, ip];
}

describe('requests relayed by a proxy', () => {
  let srv: TestServer;
  let ip: string;
  before(async () => {
    [srv, ip] = await withUserdata({});
  });
  after(() => srv.close());

  test('the VM itself reads its user-data in every format', async () => {
    for (const p of SECRET_PATHS) assert.match((await request(srv.port, p, { from: ip })).body, /hunter2/, p);
  });

  test('every instance path refuses a request carrying X-Forwarded-For, Forwarded or Via with a 403 naming it', async () => {
    for (const headers of PROXY_HEADERS) {
      const name = Object.keys(headers)[0] as string;
      for (const p of INSTANCE_PATHS) {
        const r = await request(srv.port, p, { from: ip, headers });
        assert.equal(r.status, 403, `${p} with ${name}`);
        assert.match(r.body, new RegExp(`carries ${name}, so it came through a proxy`), p);
        assert.doesNotMatch(r.body, /hunter2/);
      }
    }
  });

  test('a token PUT carrying Forwarded or Via gets no token, as one with X-Forwarded-For did', async () => {
    for (const headers of PROXY_HEADERS) {
      const r = await request(srv.port, '/latest/api/token', { method: 'PUT', from: ip, headers: { [TTL]: '60', ...headers } });
      assert.equal(r.status, 403, JSON.stringify(headers));
    }
  });

  test('an upload relayed by a proxy on the host is refused and nothing is stored', async () => {
    const xml = domainXml({ name: 'relayed', uuid: '0e0e0e0e-0000-0000-0000-000000000001', mac: '52:54:00:0e:0e:01' });
    const r = await request(srv.port, '/instance-upload', { method: 'POST', body: xml, headers: { Via: '1.1 host-proxy' } });
    assert.equal(r.status, 403);
    assert.equal(srv.running.store.byName('relayed'), undefined);
  });

  test('the listings anyone may read still answer through a proxy: they hold nothing of any VM', async () => {
    for (const p of ['/', '/openstack', '/service/name']) {
      assert.equal((await request(srv.port, p, { from: ip, headers: { Via: '1.1 squid' } })).status, 200, p);
    }
  });
});

describe('imds_tokens = required on the OpenStack and NoCloud paths', () => {
  let srv: TestServer;
  let ip: string;
  before(async () => {
    [srv, ip] = await withUserdata({ mdserver: { imds_tokens: 'required' } });
  });
  after(() => srv.close());

  test('without "Metadata: true" every OpenStack and NoCloud instance path is a 403 that names the header', async () => {
    for (const p of ['/openstack/latest/user_data', '/openstack/latest/meta_data.json', '/openstack/2018-08-27/network_data.json', '/nocloud/user-data', '/nocloud/meta-data']) {
      for (const headers of [{}, { Metadata: 'false' }, { Metadata: '' }] as Record<string, string>[]) {
        const r = await request(srv.port, p, { from: ip, headers });
        assert.equal(r.status, 403, `${p} ${JSON.stringify(headers)}`);
        assert.match(r.body, /"Metadata: true"/);
        assert.doesNotMatch(r.body, /hunter2/);
      }
    }
  });

  test('with "Metadata: true" the VM reads them', async () => {
    for (const p of ['/openstack/latest/user_data', '/nocloud/user-data']) {
      const r = await request(srv.port, p, { from: ip, headers: { Metadata: 'true' } });
      assert.equal(r.status, 200, p);
      assert.match(r.body, /hunter2/);
    }
    assert.equal((await request(srv.port, '/nocloud/meta-data', { from: ip, headers: { Metadata: 'True' } })).status, 200);
  });

  test('the header does not stand in for a token on the EC2 paths', async () => {
    assert.equal((await request(srv.port, '/latest/user-data', { from: ip, headers: { Metadata: 'true' } })).status, 401);
  });

  test('the OpenStack version list, which cloud-init polls first, needs nothing', async () => {
    assert.equal((await request(srv.port, '/openstack', { from: ip })).status, 200);
  });

  test('--check-config warns that cloud-init\'s OpenStack and NoCloud datasources will be turned away', async () => {
    const r = await run(process.execPath, [MDSERVER, '--check-config', path.join(srv.dir, 'mdserver.conf')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /imds_tokens = required: \/openstack\/ and \/nocloud\/ answer only requests with the header "Metadata: true"/);
  });
});

test('with imds_tokens = optional the OpenStack and NoCloud paths need no header, as before', async () => {
  const [srv, ip] = await withUserdata({});
  try {
    assert.equal((await request(srv.port, '/openstack/latest/user_data', { from: ip })).status, 200);
    assert.equal((await request(srv.port, '/nocloud/user-data', { from: ip })).status, 200);
  } finally {
    await srv.close();
  }
});
