// The NoCloud seed over HTTP, read back by cloud-init's own YAML and network-config code.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runPy, skipUnless } from './cloudinit.js';
import { request, startTestServer, startWithVms, tempDir, VM1, VM2, withVms, type TestServer } from './helpers.js';

interface Parsed {
  'meta-data': Record<string, unknown>;
  'network-config': Record<string, unknown>;
  interfaces: { name: string; mac: string; subnets: Record<string, unknown>[] }[];
  nameservers: string[];
}

describe('NoCloud seed over HTTP', () => {
  let srv: TestServer;
  let ip1: string;
  let ip2: string;

  before(async () => {
    // VM2 gets a name YAML 1.1 would read as a boolean if it were written bare.
    [srv, ip1, ip2] = await startWithVms({ nocloud: { network: 'static' } }, [VM1, { ...VM2, name: 'on' }]);
  });
  after(() => srv.close());

  const get = (p: string, from: string) => request(srv.port, p, { from });

  test('all four files answer, and the prefix lists them', async () => {
    for (const f of ['meta-data', 'user-data', 'vendor-data', 'network-config']) {
      assert.equal((await get(`/nocloud/${f}`, ip1)).status, 200, f);
    }
    assert.equal((await get('/nocloud/', ip1)).body, 'meta-data\nuser-data\nvendor-data\nnetwork-config');
  });

  test('user-data is the same rendered template as the EC2 user-data', async () => {
    assert.equal((await get('/nocloud/user-data', ip1)).body, (await get('/latest/user-data', ip1)).body);
  });

  test('vendor-data turns on event reporting to the address the VM reached, unless configured', async () => {
    assert.equal((await get('/nocloud/vendor-data', ip1)).body,
      `#cloud-config\nreporting:\n  mdserver: {type: webhook, endpoint: "http://127.0.0.1:${srv.port}/cloud-init/events"}\n`);
  });

  test('cloud-init reads meta-data as the instance id, host name and SSH keys', skipUnless({ cloudInit: true }), async () => {
    for (const [ip, name] of [[ip1, 'test1'], [ip2, 'on']] as const) {
      const md = (await get('/nocloud/meta-data', ip)).body;
      const net = (await get('/nocloud/network-config', ip)).body;
      const p = runPy<Parsed>('parse_nocloud.py', { 'meta-data': md, 'network-config': net });
      assert.deepEqual(p['meta-data'], {
        'instance-id': `i-${ip}`,
        'local-hostname': name,
        'public-keys': ['ssh-ed25519 AAAAdefaultkey user@host', 'ssh-rsa AAAAsecondkey other@host'],
      });
    }
  });

  test('with network = static, cloud-init reads network-config as a static address on the NIC with the VM MAC', skipUnless({ cloudInit: true }), async () => {
    const p = runPy<Parsed>('parse_nocloud.py', {
      'meta-data': (await get('/nocloud/meta-data', ip1)).body,
      'network-config': (await get('/nocloud/network-config', ip1)).body,
    });
    assert.equal(p['network-config']['version'], 2);
    assert.equal(p.interfaces.length, 1);
    const nic = p.interfaces[0];
    assert.equal(nic?.mac, VM1.mac);
    const subnet = nic?.subnets[0] ?? {};
    assert.equal(subnet['type'], 'static');
    assert.equal(subnet['address'], ip1);
    assert.equal(subnet['prefix'], 16);
    assert.deepEqual((subnet['routes'] as Record<string, unknown>[]).map((r) => r['gateway']), ['127.1.0.1']);
  });

  test('an unknown client gets 400 and an unknown file 404', async () => {
    assert.equal((await get('/nocloud/meta-data', '127.1.200.200')).status, 400);
    assert.equal((await get('/nocloud/user-data/x', ip1)).status, 404);
    assert.equal((await get('/nocloud/nothing', ip1)).status, 404);
  });
});

describe('NoCloud settings', () => {
  test('by default network-config has DHCP on the NIC with the VM MAC', skipUnless({ cloudInit: true }), async () => {
    await withVms({}, [VM1], async (srv, ip) => {
      const p = runPy<Parsed>('parse_nocloud.py', {
        'meta-data': (await request(srv.port, '/nocloud/meta-data', { from: ip })).body,
        'network-config': (await request(srv.port, '/nocloud/network-config', { from: ip })).body,
      });
      assert.equal(p.interfaces[0]?.subnets[0]?.['type'], 'dhcp4');
      assert.equal(p.interfaces[0]?.mac, VM1.mac);
    });
  });

  test('network = dhcp with use_dns gives DHCP on the NIC; vendor-data comes from the file', skipUnless({ cloudInit: true }), async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'vendor.yaml'), '#cloud-config\nruncmd: [[touch, /run/vendor]]\n');
    await withVms({ nocloud: { network: 'dhcp', vendor_data_file: 'vendor.yaml' }, dnsmasq: { use_dns: 'yes' } }, [VM1], async (srv, ip) => {
      const vd = await request(srv.port, '/nocloud/vendor-data', { from: ip });
      assert.equal(vd.body, '#cloud-config\nruncmd: [[touch, /run/vendor]]\n');
      const p = runPy<Parsed>('parse_nocloud.py', {
        'meta-data': (await request(srv.port, '/nocloud/meta-data', { from: ip })).body,
        'network-config': (await request(srv.port, '/nocloud/network-config', { from: ip })).body,
      });
      assert.equal(p.interfaces[0]?.subnets[0]?.['type'], 'dhcp4');
      assert.equal(p.interfaces[0]?.mac, VM1.mac);
    }, dir);
  });

  test('a missing vendor-data file is a configuration error naming it', async () => {
    const dir = tempDir();
    await assert.rejects(startTestServer({ nocloud: { vendor_data_file: 'nope.yaml' } }, dir), /\[nocloud\] vendor_data_file = "nope.yaml": cannot read .*nope\.yaml/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('enabled = no turns the NoCloud paths off', async () => {
    await withVms({ nocloud: { enabled: 'no' } }, [VM1], async (srv, ip) => {
      assert.equal((await request(srv.port, '/nocloud/meta-data', { from: ip })).status, 404);
    });
  });
});
