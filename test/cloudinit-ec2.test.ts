// cloud-init's own EC2 datasource against mdserver, from a network namespace that plays the VM:
// the VM has the address mdserver allocated to its MAC and reaches 169.254.169.254 across a veth,
// as a guest on the mds network does. The datasource runs its full get_data() (token, version
// probe, user-data, recursive meta-data crawl, identity document) with the platform forced to
// "aws" (SMBIOS uuid starting with ec2) and to "unknown" (anything else).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runEc2Datasource, skipUnless, upstreamCloudInit, type DatasourceResult } from './cloudinit.js';
import type { DomainSpec } from './helpers.js';
import { VmNet, type Vm } from './vmnet.js';

const clients = skipUnless({ cloudInit: true, vmNet: true });

const KEYS = ['ssh-ed25519 AAAAdefaultkey user@host', 'ssh-rsa AAAAsecondkey other@host'];

const WEB: DomainSpec = { name: 'web-1', uuid: 'ec2a4a1e-1b2c-4d3e-8f4a-5b6c7d8e9f01', mac: '52:54:00:c1:00:01' };
const DB: DomainSpec = {
  name: 'db-1',
  uuid: 'ec2b5b2f-2c3d-4e4f-9a5b-6c7d8e9fa012',
  mac: '52:54:00:c1:00:02',
  metadata: { availability_zone: 'lab-west-3b', instance_type: 'db.large' },
};

/** A per-instance template with md_server's Bottle placeholders, as users write them. */
const WEB_TEMPLATE = `#cloud-config
hostname: {{hostname}}
ssh_authorized_keys:
  - {{public_key_default}}
runcmd:
  - [touch, /run/{{hostname}}-was-configured]
`;

/** Matches the server's access-log line for a request from `ip`. */
function accessLine(ip: string, request: string): RegExp {
  return new RegExp(`${ip.replace(/\./g, '\\.')} ${request.replace(/[/.]/g, '\\$&')}`);
}

function assertServed(r: DatasourceResult, vm: Vm, zone: string, region: string): void {
  assert.equal(r.get_data, true, `get_data() failed:\n${r.log.slice(-4000)}`);
  assert.equal(r.instance_id, `i-${vm.ipv4}`);
  assert.equal(r.hostname, vm.spec.name);
  assert.deepEqual([...(r.public_keys ?? [])].sort(), KEYS);
  assert.equal(r.availability_zone, zone);
  assert.equal(r.region, region);
  assert.equal(r.launch_index, '0');
  assert.equal(r.api_version, '2021-03-23');
  // The network config cloud-init would write: DHCP on the NIC whose MAC mdserver knows.
  assert.deepEqual(r.network_config, {
    version: 2,
    ethernets: { eth0: { dhcp4: true, dhcp6: false, match: { macaddress: vm.spec.mac }, 'set-name': 'eth0' } },
  });
  assert.equal(r.mac, vm.spec.mac);
}

for (const mode of ['optional', 'required'] as const) {
  describe(`cloud-init's DataSourceEc2 with imds_tokens = ${mode}`, clients, () => {
    let net: VmNet;
    let web: Vm;
    let db: Vm;

    before(async () => {
      net = await VmNet.start({
        sections: { mdserver: { imds_tokens: mode }, 'instance-defaults': { availability_zone: 'mds-lab-1c' } },
        files: { 'userdata/web-1.yaml': WEB_TEMPLATE },
      });
      web = await net.addVm(WEB);
      db = await net.addVm(DB);
    });
    after(() => net?.stop());

    test('on an AWS-looking VM it takes a token and reads who the VM is, its keys, user-data, placement and network', () => {
      const r = runEc2Datasource(web, 'aws');
      assert.equal(r.cloud_name, 'aws');
      assertServed(r, web, 'mds-lab-1c', 'mds-lab-1');
      assert.equal(r.identity?.['instanceId'], `i-${web.ipv4}`);
      assert.equal(r.identity?.['privateIp'], web.ipv4);
      assert.deepEqual(r.userdata, {
        hostname: 'web-1',
        ssh_authorized_keys: [KEYS[0]],
        runcmd: [['touch', '/run/web-1-was-configured']],
      });
      // IMDSv2: the token came from the VM's own address, and so did everything after it.
      const log = net.serverLog();
      assert.match(log, accessLine(web.ipv4, 'PUT /latest/api/token 200'));
      assert.doesNotMatch(log, / 40[01] /, 'no request was refused');
    });

    test("a domain's mdserver: metadata places it in its own zone and region", () => {
      const r = runEc2Datasource(db, 'aws');
      assertServed(r, db, 'lab-west-3b', 'lab-west-3');
      assert.equal(r.identity?.['instanceType'], 'db.large');
      // The built-in template: the hostname and every configured key.
      assert.equal(r.userdata?.['hostname'], 'db-1');
      assert.deepEqual(r.userdata?.['ssh_authorized_keys'], KEYS);
      const tags = (r.metadata?.['tags'] as { instance: Record<string, string> }).instance;
      assert.deepEqual(tags, { availability_zone: 'lab-west-3b', instance_type: 'db.large' });
    });

    if (mode === 'optional') {
      test('on a VM cloud-init cannot identify it reads the same with IMDSv1', () => {
        const r = runEc2Datasource(web, 'unknown');
        assert.equal(r.cloud_name, 'unknown');
        assertServed(r, web, 'mds-lab-1c', 'mds-lab-1');
        assert.equal(r.userdata?.['hostname'], 'web-1');
      });
    } else {
      test('on a VM cloud-init cannot identify it finds nothing: it never asks for a token there', () => {
        const r = runEc2Datasource(web, 'unknown');
        assert.equal(r.get_data, false);
        assert.match(net.serverLog(), accessLine(web.ipv4, 'GET /2009-04-04/meta-data/instance-id 401'));
      });
    }
  });
}

const upstream = upstreamCloudInit();
describe('current upstream cloud-init (MDSERVER_CLOUDINIT_SRC)', { skip: upstream ? false : 'MDSERVER_CLOUDINIT_SRC is not set' }, () => {
  let net: VmNet;
  let web: Vm;
  before(async () => {
    net = await VmNet.start({
      sections: { mdserver: { imds_tokens: 'required' }, 'instance-defaults': { availability_zone: 'mds-lab-1c' } },
    });
    web = await net.addVm(WEB);
  });
  after(() => net?.stop());

  test('its DataSourceEc2 reads the VM through the token flow as 22.4 does', () => {
    const r = runEc2Datasource(web, 'aws', upstream as string);
    assert.ok(r.cloud_init_path.startsWith(upstream as string), `imported from ${r.cloud_init_path}`);
    assertServed(r, web, 'mds-lab-1c', 'mds-lab-1');
    assert.equal(r.identity?.['instanceId'], `i-${web.ipv4}`);
    assert.equal(r.userdata?.['hostname'], 'web-1');
    assert.match(net.serverLog(), accessLine(web.ipv4, 'PUT /latest/api/token 200'));
  });

  test('without the AWS platform it does not ask for a token, so a required-token server turns it away', () => {
    const r = runEc2Datasource(web, 'unknown', upstream as string);
    assert.equal(r.get_data, false);
  });
});
