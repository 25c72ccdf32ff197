// The SMBIOS rules of doc/cloud-init.md, checked with cloud-init's own boot-time generator,
// ds-identify, run over a scratch root that plays a KVM guest's /sys (it reads every path under
// PATH_ROOT, which is how cloud-init tests it too). Only the VM's view is invented: the DMI
// values libvirt would give it, and "kvm" as the virtualisation type (this machine may itself be
// a container, which ds-identify would otherwise take into account).

import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { DS_IDENTIFY, qemuDmi, runDsIdentify, skipUnless, upstreamCloudInit } from './cloudinit.js';

const UUID = 'ec2b7c1e-5d3a-4f62-9a0e-3c41d2b8e917';
const PLAIN_UUID = '4c1d7a0e-5d3a-4f62-9a0e-3c41d2b8e917';
const PIN = 'datasource_list: [ Ec2, None ]\ndatasource:\n  Ec2:\n    metadata_urls: [ "http://169.254.169.254" ]\n    strict_id: false\n';

/** The SMBIOS system fields the rules look at, and the image's own configuration. */
interface Machine {
  uuid: string;
  serial: string;
  /** Files under /etc/cloud/cloud.cfg.d in the image. */
  cfg?: Record<string, string>;
}

/** Runs ds-identify on a QEMU guest `m`; returns the datasource list it enables, or null when it disables cloud-init. */
function dsIdentify(script: string, m: Machine): string[] | null {
  const r = runDsIdentify({ dmi: { ...qemuDmi(m.uuid), product_serial: m.serial }, cloudCfg: m.cfg }, script);
  if (r.status !== 0) {
    assert.match(r.cfg, /notfound=disabled/, `ds-identify failed otherwise:\n${r.log}`);
    return null;
  }
  assert.ok(r.datasources, `no datasource_list in:\n${r.cfg}`);
  return r.datasources;
}

describe("Debian 12's ds-identify (cloud-init 22.4)", skipUnless({ cloudInit: true }), () => {
  const run = (m: Machine) => dsIdentify(DS_IDENTIFY, m);

  test('enables the EC2 datasource when the SMBIOS uuid starts with ec2 and the serial repeats it', () => {
    assert.deepEqual(run({ uuid: UUID, serial: UUID }), ['Ec2', 'None']);
    // SMBIOS case does not matter.
    assert.deepEqual(run({ uuid: UUID, serial: UUID.toUpperCase() }), ['Ec2', 'None']);
  });

  test('disables cloud-init when the serial differs from the ec2 uuid', () => {
    assert.deepEqual(run({ uuid: UUID, serial: 'ABC123' }), null);
  });

  test('disables cloud-init on an unrecognised machine, and enables EC2 when the image pins it', () => {
    assert.deepEqual(run({ uuid: PLAIN_UUID, serial: PLAIN_UUID }), null);
    assert.deepEqual(run({ uuid: PLAIN_UUID, serial: 'ABC123', cfg: { '90-mdserver.cfg': PIN } }), ['Ec2', 'None']);
  });
});

const upstream = upstreamCloudInit();
const UPSTREAM_DS_IDENTIFY = upstream ? path.join(upstream, 'tools', 'ds-identify') : '';
describe('current ds-identify (MDSERVER_CLOUDINIT_SRC)', { skip: upstream ? false : 'MDSERVER_CLOUDINIT_SRC is not set' }, () => {
  const run = (m: Machine) => dsIdentify(UPSTREAM_DS_IDENTIFY, m);

  test('enables the EC2 datasource for an ec2 uuid, with or without a matching serial', () => {
    assert.deepEqual(run({ uuid: UUID, serial: UUID }), ['Ec2', 'None']);
    assert.deepEqual(run({ uuid: UUID, serial: 'ABC123' }), ['Ec2', 'None']);
  });

  test('still needs the pin on an unrecognised machine', () => {
    assert.deepEqual(run({ uuid: PLAIN_UUID, serial: PLAIN_UUID }), null);
    assert.deepEqual(run({ uuid: PLAIN_UUID, serial: 'ABC123', cfg: { '90-mdserver.cfg': PIN } }), ['Ec2', 'None']);
  });
});
