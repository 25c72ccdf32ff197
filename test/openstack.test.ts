// The OpenStack metadata format over HTTP: version list, per-version listings and documents.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request, startTestServer, startWithVms, tempDir, VM1, VM2, withVms, type TestServer } from './helpers.js';

const VERSIONS = ['2012-08-10', '2013-04-04', '2013-10-17', '2015-10-15', '2016-06-30', '2016-10-06', '2017-02-22', '2018-08-27', 'latest'];

describe('OpenStack metadata over HTTP', () => {
  let srv: TestServer;
  let ip1: string;
  let ip2: string;

  before(async () => {
    [srv, ip1, ip2] = await startWithVms({ dnsmasq: { domain: 'mds.example' }, openstack: { network: 'static' } }, [{ ...VM1, metadata: { role: 'web', dsmode: 'net' } }, VM2]);
  });
  after(() => srv.close());

  const get = (p: string, from: string) => request(srv.port, p, { from });
  const json = async (p: string, from: string): Promise<Record<string, unknown>> => {
    const r = await get(p, from);
    assert.equal(r.status, 200, `${p}: ${r.body}`);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    return JSON.parse(r.body) as Record<string, unknown>;
  };

  test('/openstack lists the versions cloud-init knows and latest, one per line', async () => {
    for (const p of ['/openstack', '/openstack/']) {
      const r = await get(p, ip1);
      assert.equal(r.status, 200);
      assert.equal(r.body, VERSIONS.join('\n'));
    }
  });

  test('each version lists only the files that version has', async () => {
    const listing = async (v: string) => (await get(`/openstack/${v}/`, ip1)).body.split('\n');
    assert.deepEqual(await listing('2012-08-10'), ['meta_data.json', 'user_data']);
    assert.deepEqual(await listing('2013-10-17'), ['meta_data.json', 'user_data', 'vendor_data.json']);
    assert.deepEqual(await listing('2015-10-15'), ['meta_data.json', 'user_data', 'vendor_data.json', 'network_data.json']);
    const full = ['meta_data.json', 'user_data', 'vendor_data.json', 'network_data.json', 'vendor_data2.json'];
    assert.deepEqual(await listing('2018-08-27'), full);
    assert.deepEqual(await listing('latest'), full);
    assert.deepEqual((await get('/openstack/latest', ip1)).body.split('\n'), full);
  });

  test('every listed file answers 200 for every version', async () => {
    for (const v of VERSIONS) {
      for (const f of (await get(`/openstack/${v}`, ip1)).body.split('\n')) {
        assert.equal((await get(`/openstack/${v}/${f}`, ip1)).status, 200, `${v}/${f}`);
      }
    }
  });

  test('meta_data.json carries the domain uuid, names, keys, zone and the domain metadata', async () => {
    const md = await json('/openstack/latest/meta_data.json', ip1);
    assert.equal(md['uuid'], VM1.uuid);
    assert.equal(md['name'], 'test1');
    assert.equal(md['hostname'], 'test1.mds.example');
    assert.equal(md['launch_index'], 0);
    assert.equal(md['availability_zone'], 'mds-local-1a');
    assert.deepEqual(md['public_keys'], { default: 'ssh-ed25519 AAAAdefaultkey user@host', second: 'ssh-rsa AAAAsecondkey other@host' });
    assert.deepEqual(md['keys'], [
      { name: 'default', type: 'ssh', data: 'ssh-ed25519 AAAAdefaultkey user@host' },
      { name: 'second', type: 'ssh', data: 'ssh-rsa AAAAsecondkey other@host' },
    ]);
    assert.deepEqual(md['meta'], { role: 'web', dsmode: 'net' });
    assert.equal(md['project_id'], '000000000000');
    assert.deepEqual(md['devices'], []);
  });

  test('older versions leave out the keys Nova added later', async () => {
    const old = await json('/openstack/2012-08-10/meta_data.json', ip1);
    assert.equal(old['project_id'], undefined);
    assert.equal(old['devices'], undefined);
    const liberty = await json('/openstack/2015-10-15/meta_data.json', ip1);
    assert.equal(liberty['project_id'], '000000000000');
    assert.equal(liberty['devices'], undefined);
  });

  test('a domain without mdserver metadata has no meta key', async () => {
    const md = await json('/openstack/latest/meta_data.json', ip2);
    assert.equal(md['uuid'], VM2.uuid);
    assert.equal(md['meta'], undefined);
  });

  test('user_data is the same rendered template as the EC2 user-data', async () => {
    const os = await get('/openstack/latest/user_data', ip1);
    const ec2 = await get('/latest/user-data', ip1);
    assert.equal(os.status, 200);
    assert.equal(os.body, ec2.body);
    assert.match(os.body, /^#cloud-config\n/);
    assert.match(os.body, /^hostname: "test1"$/m);
  });

  test('vendor data turns on event reporting unless configured', async () => {
    assert.deepEqual(await json('/openstack/latest/vendor_data.json', ip1), {
      'cloud-init': `#cloud-config\nreporting:\n  mdserver: {type: webhook, endpoint: "http://127.0.0.1:${srv.port}/cloud-init/events"}\n`,
    });
    assert.deepEqual(await json('/openstack/latest/vendor_data2.json', ip1), {});
  });

  test('with network = static, network_data.json describes the metadata NIC with its allocated address', async () => {
    const nd = await json('/openstack/latest/network_data.json', ip1);
    const links = nd['links'] as Record<string, unknown>[];
    const networks = nd['networks'] as Record<string, unknown>[];
    assert.equal(links.length, 1);
    assert.equal(links[0]?.['ethernet_mac_address'], VM1.mac);
    assert.equal(networks.length, 1);
    const n = networks[0] ?? {};
    assert.equal(n['type'], 'ipv4');
    assert.equal(n['link'], links[0]?.['id']);
    assert.equal(n['ip_address'], ip1);
    assert.equal(n['netmask'], '255.255.0.0');
    assert.deepEqual(n['routes'], [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '127.1.0.1' }]);
    assert.deepEqual(nd['services'], []);
  });

  test('each VM gets its own documents', async () => {
    const nd = await json('/openstack/latest/network_data.json', ip2);
    assert.equal((nd['networks'] as Record<string, unknown>[])[0]?.['ip_address'], ip2);
  });

  test('an unknown version or file is 404, an unknown client 400, a POST 405', async () => {
    assert.equal((await get('/openstack/2099-01-01/meta_data.json', ip1)).status, 404);
    assert.equal((await get('/openstack/latest/password', ip1)).status, 404);
    assert.equal((await get('/openstack/latest/meta_data.json/x', ip1)).status, 404);
    const unknown = await get('/openstack/latest/meta_data.json', '127.1.200.200');
    assert.equal(unknown.status, 400);
    assert.match(unknown.body, /Unknown client/);
    const post = await request(srv.port, '/openstack/latest/meta_data.json', { from: ip1, method: 'POST', body: '{}' });
    assert.equal(post.status, 405);
    assert.equal(post.headers['allow'], 'GET, HEAD');
  });

  test('a malformed escape in the path is a 400, not a crash', async () => {
    const r = await get('/openstack/latest/%E0%A4%A', ip1);
    assert.equal(r.status, 400);
  });
});

describe('OpenStack metadata settings', () => {
  test('by default network_data.json tells the guest to use DHCP on the metadata NIC', async () => {
    await withVms({}, [VM1], async (srv, ip) => {
      const nd = JSON.parse((await request(srv.port, '/openstack/latest/network_data.json', { from: ip })).body) as Record<string, unknown>;
      const links = nd['links'] as Record<string, unknown>[];
      const n = (nd['networks'] as Record<string, unknown>[])[0] ?? {};
      assert.equal(links[0]?.['ethernet_mac_address'], VM1.mac);
      assert.equal(n['type'], 'ipv4_dhcp');
      assert.equal(n['link'], links[0]?.['id']);
      assert.equal(n['ip_address'], undefined);
    });
  });

  test('network = dhcp and use_dns give a DHCP network and the DNS service', async () => {
    await withVms({ openstack: { network: 'dhcp' }, dnsmasq: { use_dns: 'yes' } }, [VM1], async (srv, ip) => {
      const nd = JSON.parse((await request(srv.port, '/openstack/latest/network_data.json', { from: ip })).body) as Record<string, unknown>;
      const n = (nd['networks'] as Record<string, unknown>[])[0] ?? {};
      assert.equal(n['type'], 'ipv4_dhcp');
      assert.equal(n['ip_address'], undefined);
      assert.deepEqual(nd['services'], [{ type: 'dns', address: '127.1.0.1' }]);
    });
  });

  test('vendor data files are served as configured', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'vd.json'), '{"cloud-init": "#cloud-config\\npackages: [htop]\\n"}');
    fs.writeFileSync(path.join(dir, 'vd2.json'), '{"static": {"a": 1}}');
    await withVms({ openstack: { vendor_data_file: 'vd.json', vendor_data2_file: path.join(dir, 'vd2.json') } }, [VM1], async (srv, ip) => {
      const vd = await request(srv.port, '/openstack/latest/vendor_data.json', { from: ip });
      assert.deepEqual(JSON.parse(vd.body), { 'cloud-init': '#cloud-config\npackages: [htop]\n' });
      const vd2 = await request(srv.port, '/openstack/latest/vendor_data2.json', { from: ip });
      assert.deepEqual(JSON.parse(vd2.body), { static: { a: 1 } });
    }, dir);
  });

  test('a vendor data file that is not JSON stops the server with the file, section and key named', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'vd.json'), '{not json');
    await assert.rejects(startTestServer({ openstack: { vendor_data_file: 'vd.json' } }, dir), (e: Error) => {
      assert.match(e.message, /\[openstack\] vendor_data_file = "vd.json": .*vd\.json is not JSON/);
      return true;
    });
    await assert.rejects(startTestServer({ openstack: { network: 'static-ish' } }, dir), /\[openstack\] network = "static-ish": expected static or dhcp/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('enabled = no turns the OpenStack paths off', async () => {
    await withVms({ openstack: { enabled: 'no' } }, [VM1], async (srv, ip) => {
      assert.equal((await request(srv.port, '/openstack', { from: ip })).status, 404);
      assert.equal((await request(srv.port, '/openstack/latest/meta_data.json', { from: ip })).status, 404);
    });
  });
});
