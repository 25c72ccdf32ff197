// cloud-init's own OpenStack and NoCloud datasources, run from a VM network namespace against
// the real server on 169.254.169.254, with the guest DMI data that `mdserver sysinfo` produces.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dmiDir, fakeGuestRoot, guestDmi, runPy, skipUnless, sysinfoApplied } from './cloudinit.js';
import { domainXml, tempDir, VM1, VM2, type DomainSpec } from './helpers.js';
import { VmNet, type Vm } from './vmnet.js';

const KEYS = ['ssh-ed25519 AAAAdefaultkey user@host', 'ssh-rsa AAAAsecondkey other@host'];

interface DsResult {
  detected: boolean | null;
  found: boolean;
  datasource: string;
  instance_id: string;
  hostname: string;
  public_keys: string[];
  userdata: string;
  vendordata: string | null;
  metadata: Record<string, unknown>;
  availability_zone: string | null;
  check_instance_id: boolean | null;
  network_config: { version: number; config: Record<string, unknown>[] } | null;
  eni: string | null;
  ec2_metadata_keys?: string[];
  seed_network_config?: Record<string, unknown>;
  seed_eni?: string;
}

/** The guest's DMI directory after `mdserver sysinfo --style <style> --apply` on its domain XML. */
function dmiFor(spec: DomainSpec, style: string, dir: string): string {
  const root = fakeGuestRoot(path.join(dir, `${spec.name}-root`), { dmi: guestDmi(sysinfoApplied(domainXml(spec), style)) });
  return dmiDir(root);
}

function runDatasource(vm: Vm, kind: 'openstack' | 'nocloud', dmi: string, dir: string): DsResult {
  const work = path.join(dir, `${vm.spec.name}-${kind}-work`);
  fs.mkdirSync(work, { recursive: true });
  return runPy<DsResult>('datasource.py', { kind, dmi, work }, { ns: vm.ns });
}

/** The vendor-data every style carries by default ([mdserver] report_events = yes). */
const REPORTING = '#cloud-config\nreporting:\n  mdserver: {type: webhook, endpoint: "http://169.254.169.254/cloud-init/events"}\n';

describe('cloud-init datasources from a VM namespace', { ...skipUnless({ cloudInit: true, vmNet: true }), concurrency: false }, () => {
  let net: VmNet;
  let dir: string;
  let vm1: Vm;
  let vm2: Vm;

  before(async () => {
    dir = tempDir();
    net = await VmNet.start({ sections: { dnsmasq: { use_dns: 'yes', domain: 'mds.example' }, openstack: { network: 'static' }, nocloud: { network: 'static' } } });
    vm1 = await net.addVm({ ...VM1, metadata: { role: 'web' } });
    vm2 = await net.addVm(VM2);
  });
  after(async () => {
    await net?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('DataSourceOpenStack detects OpenStack from the sysinfo and reads its instance', () => {
    const r = runDatasource(vm1, 'openstack', dmiFor(VM1, 'openstack', dir), dir);
    assert.equal(r.detected, true);
    assert.equal(r.found, true, JSON.stringify(r));
    assert.match(r.datasource, /DataSourceOpenStack \[net,ver=2\]/);
    // The instance id is the domain uuid, and cloud-init confirms it against the DMI system uuid.
    assert.equal(r.instance_id, VM1.uuid);
    assert.equal(r.check_instance_id, true);
    assert.equal(r.hostname, 'test1');
    assert.deepEqual([...r.public_keys].sort(), [...KEYS].sort());
    assert.equal(r.availability_zone, 'mds-local-1a');
    assert.deepEqual(r.metadata['meta'], { role: 'web' });
    assert.match(r.userdata, /^#cloud-config\n/);
    assert.match(r.userdata, /^hostname: "test1"$/m);
    // vendor_data.json's "cloud-init" key, as cloud-init's convert_vendordata takes it: the
    // reporting block, pointed at the address the VM reached.
    assert.equal(r.vendordata, REPORTING);
    // It also crawled the EC2 tree at /latest/meta-data/ for block devices.
    assert.ok(r.ec2_metadata_keys?.includes('instance-id'), JSON.stringify(r.ec2_metadata_keys));
  });

  test('with network = static, DataSourceOpenStack turns network_data.json into a static address on the VM NIC', () => {
    const r = runDatasource(vm2, 'openstack', dmiFor(VM2, 'openstack', dir), dir);
    assert.equal(r.found, true, JSON.stringify(r));
    assert.equal(r.instance_id, VM2.uuid);
    const phys = r.network_config?.config.find((c) => c['type'] === 'physical') ?? {};
    assert.equal(phys['name'], 'eth0');
    assert.equal(phys['mac_address'], VM2.mac);
    const subnet = (phys['subnets'] as Record<string, unknown>[])[0] ?? {};
    assert.equal(subnet['type'], 'static');
    assert.equal(subnet['address'], vm2.ipv4);
    assert.equal(subnet['netmask'], '255.255.0.0');
    const dns = r.network_config?.config.find((c) => c['type'] === 'nameserver') ?? {};
    assert.equal(dns['address'], net.network.gateway);
    assert.match(r.eni ?? '', new RegExp(`iface eth0 inet static\\n\\s+address ${vm2.ipv4.replace(/\./g, '\\.')}/16\\n`));
    assert.match(r.eni ?? '', new RegExp(`route add default gw ${net.network.gateway.replace(/\./g, '\\.')}`));
  });

  test('DataSourceNoCloudNet follows the sysinfo serial to the seed and reads its instance', () => {
    const r = runDatasource(vm1, 'nocloud', dmiFor(VM1, 'nocloud', dir), dir);
    assert.equal(r.found, true, JSON.stringify(r));
    assert.match(r.datasource, /DataSourceNoCloudNet \[seed=dmi,http:\/\/169\.254\.169\.254\/nocloud\/\]\[dsmode=net\]/);
    assert.equal(r.instance_id, `i-${vm1.ipv4}`);
    assert.equal(r.hostname, 'test1');
    assert.deepEqual(r.public_keys, KEYS);
    assert.match(r.userdata, /^#cloud-config\n/);
    assert.match(r.userdata, /^hostname: "test1"$/m);
    assert.equal(r.vendordata, REPORTING);
  });

  test('with network = static, the NoCloud network-config renders as a static address on the NIC with the VM MAC', () => {
    const r = runDatasource(vm2, 'nocloud', dmiFor(VM2, 'nocloud', dir), dir);
    assert.equal(r.found, true, JSON.stringify(r));
    assert.equal(r.instance_id, `i-${vm2.ipv4}`);
    assert.equal(r.hostname, 'test2');
    assert.equal(r.seed_network_config?.['version'], 2);
    const eni = r.seed_eni ?? '';
    assert.match(eni, new RegExp(`iface eth0 inet static\\n\\s+address ${vm2.ipv4.replace(/\./g, '\\.')}/16\\n`));
    assert.match(eni, /dns-nameservers 10\.199\.0\.1/);
  });

  test('the OpenStack style does not satisfy NoCloud, and no style satisfies OpenStack without its product name', () => {
    const nocloud = runDatasource(vm1, 'nocloud', dmiFor(VM1, 'openstack', dir), dir);
    assert.equal(nocloud.found, false);
    const openstack = runDatasource(vm1, 'openstack', dmiFor(VM1, 'nocloud', dir), dir);
    assert.equal(openstack.detected, false);
    assert.equal(openstack.found, false);
  });
});
