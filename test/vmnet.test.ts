// The namespace harness itself: a VM reaches the real server at 169.254.169.254 from the address
// mdserver allocated to it, and stop() leaves no namespace, process or file behind.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { test } from 'node:test';
import { skipUnlessNetns } from './netns.js';
import { httpFrom, MDS_URL, VmNet } from './vmnet.js';
import { VM1, VM2 } from './helpers.js';

const netns = skipUnlessNetns(['curl']);

test('VMs reach the server at 169.254.169.254 and are known by the addresses it allocated', netns, async () => {
  const net = await VmNet.start();
  try {
    const vm1 = await net.addVm(VM1);
    const vm2 = await net.addVm(VM2);
    assert.match(vm1.ipv4, /^10\.199\.\d+\.\d+$/);
    assert.notEqual(vm1.ipv4, vm2.ipv4);
    assert.match(vm1.ns.ip('link', 'show', 'eth0'), new RegExp(`link/ether ${VM1.mac}`));
    assert.equal(httpFrom(vm1.ns, `${MDS_URL}/latest/meta-data/local-ipv4`).body, vm1.ipv4);
    assert.equal(httpFrom(vm2.ns, `${MDS_URL}/latest/meta-data/hostname`).body, 'test2');
    assert.equal(httpFrom(vm2.ns, `${MDS_URL}/latest/meta-data/mac`).body, VM2.mac);
  } finally {
    await net.stop();
  }
});

test('stop() removes the namespaces, the server process and its files', netns, async () => {
  const net = await VmNet.start();
  const vm = await net.addVm(VM1);
  const pid = net.server.pid as number;
  await net.stop();
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.ok(!left.includes(net.host.name), `${net.host.name} still exists`);
  assert.ok(!left.includes(vm.ns.name), `${vm.ns.name} still exists`);
  assert.throws(() => process.kill(pid, 0), /ESRCH/);
  assert.equal(fs.existsSync(net.dir), false);
});
