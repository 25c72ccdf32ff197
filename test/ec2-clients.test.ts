// EC2 tools other than cloud-init, run as they would be on the VM, against a server that
// requires IMDSv2 tokens: amazon-ec2-utils' ec2-metadata script and the AWS SDK for JavaScript v3.

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { skipUnless } from './cloudinit.js';
import type { DomainSpec } from './helpers.js';
import { VmNet, type Vm } from './vmnet.js';

const APP: DomainSpec = {
  name: 'app-7',
  uuid: 'ec2c6c30-3d4e-4f50-8b6c-7d8e9fa0b123',
  mac: '52:54:00:e2:00:07',
  metadata: { availability_zone: 'lab-north-1a', role: 'frontend' },
};
const SDK_SCRIPT = fileURLToPath(new URL('./sdk-imds.js', import.meta.url));

describe('EC2 tools on a VM, with imds_tokens = required', skipUnless({ tools: ['ec2-metadata'] }), () => {
  let net: VmNet;
  let vm: Vm;

  before(async () => {
    net = await VmNet.start({ sections: { mdserver: { imds_tokens: 'required' } } });
    vm = await net.addVm(APP);
  });
  after(() => net?.stop());

  const ec2Metadata = (...args: string[]): string => vm.ns.run('ec2-metadata', args);

  test("ec2-metadata prints the instance's id, local IPv4, zone and reservation", () => {
    assert.equal(ec2Metadata('-i'), `instance-id: i-${vm.ipv4}\n`);
    assert.equal(ec2Metadata('-o'), `local-ipv4: ${vm.ipv4}\n`);
    assert.equal(ec2Metadata('-h'), 'local-hostname: app-7\n');
    assert.equal(ec2Metadata('-z'), 'placement: lab-north-1a\n');
    // It asks for latest//meta-data/reservation-id: the doubled slash must not matter.
    assert.match(ec2Metadata('-e'), /^reservation-id: r-[0-9a-f]{17}\n$/);
  });

  test('ec2-metadata prints every configured public key under its name', () => {
    assert.equal(
      ec2Metadata('-u'),
      [
        'public-keys: ',
        'keyname:default', 'index:0', 'format:openssh-key', 'key:(begins from next line)', 'ssh-ed25519 AAAAdefaultkey user@host',
        'keyname:second', 'index:1', 'format:openssh-key', 'key:(begins from next line)', 'ssh-rsa AAAAsecondkey other@host',
        '',
      ].join('\n'),
    );
  });

  test("ec2-metadata prints the domain's mdserver: metadata as tags", () => {
    const out = ec2Metadata('-g');
    assert.match(out, /^tags: \n/);
    assert.match(out, /\t role: frontend\n/);
    assert.match(out, /\t availability_zone: lab-north-1a\n/);
  });

  test('ec2-metadata got a token from the VM before reading anything', () => {
    assert.match(net.serverLog(), new RegExp(`${vm.ipv4.replace(/\./g, '\\.')} PUT /latest/api/token 200`));
  });

  test('the AWS SDK for JavaScript v3 reads instance-id and the identity document through its token flow', () => {
    const r = vm.ns.try(process.execPath, [SDK_SCRIPT, '/latest/meta-data/instance-id', '/latest/dynamic/instance-identity/document']);
    const out = JSON.parse(r.stdout || '{}') as { token?: string; values?: Record<string, string>; error?: string };
    assert.equal(r.status, 0, out.error ?? r.stderr);
    assert.match(out.token ?? '', /^[A-Za-z0-9_-]{20,}$/);
    assert.equal(out.values?.['/latest/meta-data/instance-id'], `i-${vm.ipv4}`);
    const doc = JSON.parse(out.values?.['/latest/dynamic/instance-identity/document'] ?? '{}') as Record<string, unknown>;
    assert.equal(doc['privateIp'], vm.ipv4);
    assert.equal(doc['region'], 'lab-north-1');
  });

  test('the same SDK call from the host is refused: the host is no instance, whatever its token', () => {
    const r = net.host.try(process.execPath, [SDK_SCRIPT, '/latest/meta-data/instance-id']);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /400/);
  });
});
