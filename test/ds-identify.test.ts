// The SMBIOS rules of doc/cloud-init.md, checked with cloud-init's own boot-time generator,
// ds-identify, run over a scratch root that plays a KVM guest's /sys (it reads every path under
// PATH_ROOT, which is how cloud-init tests it too). Only the VM's view is invented: the DMI
// values libvirt would give it, and "kvm" from systemd-detect-virt (this machine may itself be a
// container, which ds-identify would otherwise take into account).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { tempDir } from './helpers.js';
import { upstreamCloudInit } from './clients.js';

const DEBIAN_DS_IDENTIFY = '/usr/lib/cloud-init/ds-identify';
const UUID = 'ec2b7c1e-5d3a-4f62-9a0e-3c41d2b8e917';
const PLAIN_UUID = '4c1d7a0e-5d3a-4f62-9a0e-3c41d2b8e917';
const PIN = 'datasource_list: [ Ec2, None ]\ndatasource:\n  Ec2:\n    metadata_urls: [ "http://169.254.169.254" ]\n    strict_id: false\n';

interface Guest {
  uuid: string;
  serial: string;
  /** Files under /etc/cloud/cloud.cfg.d in the image. */
  cfg?: Record<string, string>;
}

/** Runs ds-identify for `guest`; returns the datasource list it enables, or null when it disables cloud-init. */
function dsIdentify(script: string, guest: Guest): string | null {
  const root = tempDir('mdserver-dsid-');
  try {
    const dmi = path.join(root, 'sys/class/dmi/id');
    fs.mkdirSync(dmi, { recursive: true });
    fs.writeFileSync(path.join(dmi, 'product_uuid'), `${guest.uuid}\n`);
    fs.writeFileSync(path.join(dmi, 'product_serial'), `${guest.serial}\n`);
    fs.writeFileSync(path.join(dmi, 'sys_vendor'), 'QEMU\n');
    fs.writeFileSync(path.join(dmi, 'product_name'), 'Standard PC (Q35 + ICH9, 2009)\n');
    fs.mkdirSync(path.join(root, 'etc/cloud/cloud.cfg.d'), { recursive: true });
    for (const [name, text] of Object.entries(guest.cfg ?? {})) fs.writeFileSync(path.join(root, 'etc/cloud/cloud.cfg.d', name), text);
    fs.mkdirSync(path.join(root, 'proc/1'), { recursive: true });
    for (const f of ['proc/cmdline', 'proc/1/cmdline', 'proc/1/environ']) fs.writeFileSync(path.join(root, f), '');
    // The guest's view of the tools ds-identify asks: a KVM guest without labelled filesystems.
    const bin = path.join(root, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'systemd-detect-virt'), '#!/bin/sh\necho kvm\n', { mode: 0o755 });
    fs.writeFileSync(path.join(bin, 'blkid'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const r = spawnSync('sh', [script, '--force'], {
      env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, PATH_ROOT: root },
      encoding: 'utf8',
      timeout: 30000,
    });
    const cfg = fs.readFileSync(path.join(root, 'run/cloud-init/cloud.cfg'), 'utf8');
    if (r.status !== 0) {
      assert.match(cfg, /notfound=disabled/, `ds-identify failed otherwise:\n${r.stderr}`);
      return null;
    }
    return /^datasource_list: \[ (.*) \]$/m.exec(cfg)?.[1] ?? cfg;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function skipUnlessScript(file: string): { skip: string | false } {
  if (fs.existsSync(file)) return { skip: false };
  if (process.env['CI'] === 'true') throw new Error(`${file} is missing: install Debian's cloud-init package`);
  return { skip: `needs ${file} (Debian's cloud-init package)` };
}

describe("Debian 12's ds-identify (cloud-init 22.4)", skipUnlessScript(DEBIAN_DS_IDENTIFY), () => {
  const run = (g: Guest) => dsIdentify(DEBIAN_DS_IDENTIFY, g);

  test('enables the EC2 datasource when the SMBIOS uuid starts with ec2 and the serial repeats it', () => {
    assert.equal(run({ uuid: UUID, serial: UUID }), 'Ec2, None');
    // SMBIOS case does not matter.
    assert.equal(run({ uuid: UUID, serial: UUID.toUpperCase() }), 'Ec2, None');
  });

  test('disables cloud-init when the serial differs from the ec2 uuid', () => {
    assert.equal(run({ uuid: UUID, serial: 'ABC123' }), null);
  });

  test('disables cloud-init on an unrecognised machine, and enables EC2 when the image pins it', () => {
    assert.equal(run({ uuid: PLAIN_UUID, serial: PLAIN_UUID }), null);
    assert.equal(run({ uuid: PLAIN_UUID, serial: 'ABC123', cfg: { '90-mdserver.cfg': PIN } }), 'Ec2, None');
  });
});

const upstream = upstreamCloudInit();
const UPSTREAM_DS_IDENTIFY = upstream ? path.join(upstream, 'tools', 'ds-identify') : '';
describe('current ds-identify (MDSERVER_CLOUDINIT_SRC)', upstream ? skipUnlessScript(UPSTREAM_DS_IDENTIFY) : { skip: 'MDSERVER_CLOUDINIT_SRC is not set' }, () => {
  const run = (g: Guest) => dsIdentify(UPSTREAM_DS_IDENTIFY, g);

  test('enables the EC2 datasource for an ec2 uuid, with or without a matching serial', () => {
    assert.equal(run({ uuid: UUID, serial: UUID }), 'Ec2, None');
    assert.equal(run({ uuid: UUID, serial: 'ABC123' }), 'Ec2, None');
  });

  test('still needs the pin on an unrecognised machine', () => {
    assert.equal(run({ uuid: PLAIN_UUID, serial: PLAIN_UUID }), null);
    assert.equal(run({ uuid: PLAIN_UUID, serial: 'ABC123', cfg: { '90-mdserver.cfg': PIN } }), 'Ec2, None');
  });
});
