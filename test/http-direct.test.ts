// A metadata GET or HEAD is answered before Express (src/http/app.ts); the same request with a
// query string, or in absolute form, goes through Express. A VM must get the same answer either
// way, refusals included: the same status, headers that matter and body, and a request that tries
// to reach the host's routes through a metadata-looking path gets nothing more than before.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request, startWithVms, TEST_NET, VM1, type Reply, type RequestOptions, type Sections, type TestServer } from './helpers.js';

/** Every header but the date, which moves between two answers. */
function shape(r: Reply): Record<string, unknown> {
  const headers = Object.fromEntries(Object.entries(r.headers).filter(([h]) => h !== 'date'));
  return { status: r.status, headers, body: r.body };
}

/** `path` as the VM asks it, and as Express alone would answer it (a query changes no answer). */
async function bothWays(srv: TestServer, path: string, o: RequestOptions): Promise<[Reply, Reply]> {
  const direct = await request(srv.port, path, o);
  const viaExpress = await request(srv.port, `${path}${path.includes('?') ? '&' : '?'}via=express`, o);
  return [direct, viaExpress];
}

const UNKNOWN = TEST_NET.net_address.replace(/\.0$/, '.250');

function sameBothWays(config: Sections, cases: { path: string; o?: RequestOptions; from?: 'unknown' }[]): void {
  let srv: TestServer;
  let ip: string;
  before(async () => {
    [srv, ip] = await startWithVms(config, [{ ...VM1, metadata: { role: 'web' } }]);
  });
  after(() => srv.close());
  for (const c of cases) {
    const label = `${c.o?.method ?? 'GET'} ${c.path}${c.o?.headers ? ` ${JSON.stringify(c.o.headers)}` : ''}${c.from ? ' from an unknown address' : ''}`;
    test(label, async () => {
      const o = { ...c.o, from: c.from === 'unknown' ? UNKNOWN : ip };
      const [direct, viaExpress] = await bothWays(srv, c.path, o);
      assert.deepEqual(shape(direct), shape(viaExpress));
    });
  }
}

describe('a metadata request gets the same answer before Express as through it', () => {
  sameBothWays({ nocloud: { enabled: 'yes' } }, [
    { path: '/latest/meta-data/instance-id' },
    { path: '/latest/meta-data/' },
    { path: '/latest/meta-data' },
    { path: '/latest//meta-data/local-hostname' },
    { path: '//latest/meta-data/tags/instance/role' },
    { path: '/2009-04-04/meta-data/placement/availability-zone' },
    { path: '/latest/user-data' },
    { path: '/latest/meta-data/no-such-key' },
    { path: '/latest/meta-data/%6c%6f%63%61%6c-hostname' },
    { path: '/latest/meta-data/%zz' },
    { path: '/latest/meta-data/../../instance-upload' },
    { path: '/latest/meta-data/', o: { headers: { Accept: 'application/json' } } },
    { path: '/latest/meta-data/no-such-key', o: { headers: { Accept: 'application/json' } } },
    { path: '/latest/meta-data/instance-id', o: { method: 'HEAD' } },
    { path: '/latest/meta-data/instance-id', o: { headers: { 'X-aws-ec2-metadata-token': 'forged' } } },
    { path: '/latest/meta-data/instance-id', o: { headers: { 'X-Forwarded-For': '127.0.0.1' } } },
    { path: '/latest/meta-data/instance-id', from: 'unknown' },
    { path: '/latest/meta-data/instance-id', from: 'unknown', o: { headers: { Accept: 'application/json' } } },
    { path: '/openstack/latest/meta_data.json' },
    { path: '/openstack/latest/vendor_data.json' },
    { path: '/openstack/latest/user_data' },
    { path: '/nocloud/meta-data' },
    { path: '/nocloud/network-config' },
  ]);
});

describe('with imds_tokens = required, refusals are the same before Express as through it', () => {
  sameBothWays({ mdserver: { imds_tokens: 'required' } }, [
    { path: '/latest/meta-data/instance-id' },
    { path: '/openstack/latest/meta_data.json' },
    { path: '/openstack/latest/meta_data.json', o: { headers: { Metadata: 'true' } } },
  ]);
});

describe('what a VM cannot reach through the metadata paths', () => {
  let srv: TestServer;
  let ip: string;
  before(async () => {
    [srv, ip] = await startWithVms({}, [VM1]);
  });
  after(() => srv.close());

  test("a VM's GET of the host's routes by doubled slashes is refused as before", async () => {
    for (const path of ['//instance-upload', '//service/configuration/', '/health', '//metrics']) {
      const r = await request(srv.port, path, { from: ip });
      assert.ok(r.status === 401 || r.status === 405 || r.status === 404, `${path}: ${r.status} ${r.body}`);
      assert.doesNotMatch(r.body, /\[store\]|instances|mdserver_/, path);
    }
  });

  test('an absolute-form request line is answered by Express with the same value', async () => {
    const direct = await request(srv.port, '/latest/meta-data/instance-id', { from: ip });
    const absolute = await request(srv.port, `http://169.254.169.254/latest/meta-data/instance-id`, { from: ip });
    assert.equal(direct.status, 200);
    assert.deepEqual(shape(absolute), shape(direct));
  });

  test('a GET with a large body on a metadata path is answered as one without', async () => {
    const r = await request(srv.port, '/latest/meta-data/instance-id', { from: ip, body: 'x'.repeat(100_000), headers: { 'Content-Type': 'text/plain' } });
    assert.equal(r.status, 200);
    assert.equal((await request(srv.port, '/latest/meta-data/instance-id', { from: ip })).body, r.body);
  });
});
