// cloud-init's own ds-identify, run against a guest /sys filled from each style's domain XML,
// picks the datasource that style is for (and, without the helper, disables cloud-init).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { fakeGuestRoot, guestDmi, runDsIdentify, skipUnlessCloudInit } from './cloudinit.js';
import { tempDir } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'mdserver');
const DOMAIN = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'test1-domain.xml'), 'utf8');

/** The domain XML after `mdserver sysinfo --style <style> --apply`, run as a user would. */
function applied(style: string, dir: string): string {
  const file = path.join(dir, `test1-${style}.xml`);
  fs.writeFileSync(file, DOMAIN);
  const r = spawnSync(process.execPath, [BIN, 'sysinfo', '--style', style, '--apply', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return fs.readFileSync(file, 'utf8');
}

describe('ds-identify picks the datasource of each sysinfo style', () => {
  const cases: [string, string, RegExp][] = [
    ['ec2', 'Ec2', /ec2 platform is 'AWS'/],
    ['openstack', 'OpenStack', /check for 'OpenStack' returned found/],
    ['nocloud', 'NoCloud', /check for 'NoCloud' returned found/],
  ];
  for (const [style, ds, why] of cases) {
    test(`the ${style} style enables cloud-init with only ${ds}`, skipUnlessCloudInit(), () => {
      const dir = tempDir();
      try {
        const dmi = guestDmi(applied(style, dir));
        const r = runDsIdentify(fakeGuestRoot(path.join(dir, 'root'), dmi));
        assert.equal(r.status, 0, r.log);
        assert.deepEqual(r.datasources, [ds, 'None'], r.log);
        assert.match(r.log, why);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test('without any sysinfo, ds-identify finds nothing and disables cloud-init', skipUnlessCloudInit(), () => {
    const dir = tempDir();
    try {
      const r = runDsIdentify(fakeGuestRoot(path.join(dir, 'root'), guestDmi(DOMAIN)));
      assert.equal(r.status, 1, r.log);
      assert.match(r.log, /No ds found/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the sysinfo counts only with <smbios mode=sysinfo>: libvirt ignores it otherwise', () => {
    const dir = tempDir();
    try {
      const xml = applied('openstack', dir).replace("<smbios mode='sysinfo'/>", '');
      assert.equal(guestDmi(xml)['product_name'], 'Standard PC (Q35 + ICH9, 2009)');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
