// cloud-init's own ds-identify, run against a guest /sys filled from each style's domain XML,
// picks the datasource that style is for (and, without the helper, disables cloud-init).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { guestDmi, runDsIdentify, skipUnless, sysinfoApplied } from './cloudinit.js';
import { ROOT } from './process.js';
import { trixieCloudInit } from './trixie.js';

const DOMAIN = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'test1-domain.xml'), 'utf8');

describe('ds-identify picks the datasource of each sysinfo style', () => {
  const cases: [string, string, RegExp][] = [
    ['ec2', 'Ec2', /ec2 platform is 'AWS'/],
    ['openstack', 'OpenStack', /check for 'OpenStack' returned found/],
    ['nocloud', 'NoCloud', /check for 'NoCloud' returned found/],
    ['cloudstack', 'CloudStack', /check for 'CloudStack' returned found/],
  ];
  for (const [style, ds, why] of cases) {
    test(`the ${style} style enables cloud-init with only ${ds}`, skipUnless({ cloudInit: true }), () => {
      const r = runDsIdentify({ dmi: guestDmi(sysinfoApplied(DOMAIN, style)) });
      assert.equal(r.status, 0, r.log);
      assert.deepEqual(r.datasources, [ds, 'None'], r.log);
      assert.match(r.log, why);
    });
  }

  test("cloud-init 25.1's ds-identify (Debian 13) also picks CloudStack for the cloudstack style", skipUnless({ cloudInit: true }), () => {
    const script = path.resolve(trixieCloudInit(), '..', '..', 'cloud-init', 'ds-identify');
    const r = runDsIdentify({ dmi: guestDmi(sysinfoApplied(DOMAIN, 'cloudstack')) }, script);
    assert.equal(r.status, 0, r.log);
    assert.deepEqual(r.datasources, ['CloudStack', 'None'], r.log);
    assert.match(r.log, /check for 'CloudStack' returned found/);
  });

  test('without any sysinfo, ds-identify finds nothing and disables cloud-init', skipUnless({ cloudInit: true }), () => {
    const r = runDsIdentify({ dmi: guestDmi(DOMAIN) });
    assert.equal(r.status, 1, r.log);
    assert.match(r.log, /No ds found/);
  });

  test('the sysinfo counts only with <smbios mode=sysinfo>: libvirt ignores it otherwise', () => {
    const xml = sysinfoApplied(DOMAIN, 'openstack').replace("<smbios mode='sysinfo'/>", '');
    assert.equal(guestDmi(xml)['product_name'], 'Standard PC (Q35 + ICH9, 2009)');
  });
});
