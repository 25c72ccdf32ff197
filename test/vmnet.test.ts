// The namespace harness itself: a VM reaches the real server at 169.254.169.254 from the address
// mdserver allocated to it, and stop() leaves no namespace, process or file behind.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { test } from 'node:test';
import { skipUnlessNetns, waitFor } from './netns.js';
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

test('with verify_mac the server accepts the VM by its MAC and refuses it once the MAC changes', netns, async () => {
  const net = await VmNet.start({ sections: { mdserver: { verify_mac: 'yes' } } });
  try {
    const vm = await net.addVm(VM1);
    assert.equal(httpFrom(vm.ns, `${MDS_URL}/latest/meta-data/instance-id`).status, 200);
    // Linux announces the new MAC with a gratuitous ARP, which updates the host's neighbour table.
    vm.ns.ip('link', 'set', 'eth0', 'address', '52:54:00:3a:cf:42');
    await waitFor('the refusal', () => httpFrom(vm.ns, `${MDS_URL}/latest/meta-data/instance-id`).status === 403, 5000);
  } finally {
    await net.stop();
  }
});

test('with verify_mac a VM that takes another VM\'s address gets 403, and the owner is served again once it is back', netns, async () => {
  const net = await VmNet.start({ sections: { mdserver: { verify_mac: 'yes' } } });
  try {
    const victim = await net.addVm(VM1);
    const thief = await net.addVm(VM2);
    assert.equal(httpFrom(victim.ns, `${MDS_URL}/latest/meta-data/instance-id`).body, `i-${victim.ipv4}`);
    // The victim goes quiet (shut down); the thief drops its own address and takes the victim's.
    victim.ns.ip('link', 'set', 'eth0', 'down');
    thief.ns.ip('addr', 'flush', 'dev', 'eth0');
    thief.ns.ip('addr', 'add', `${victim.ipv4}/${net.network.prefix}`, 'dev', 'eth0');
    thief.ns.ip('route', 'replace', `${MDS_URL.slice(7)}/32`, 'via', net.network.gateway, 'dev', 'eth0');
    await waitFor('the thief to be refused', () => {
      const r = httpFrom(thief.ns, `${MDS_URL}/latest/meta-data/public-keys/0/openssh-key`);
      return r.status === 403 && !r.body.includes('ssh-');
    }, 10000);
    assert.equal(httpFrom(thief.ns, `${MDS_URL}/latest/user-data`).status, 403);
    assert.match(net.serverLog() + net.serverOutput(), /refused a caller whose MAC does not match the instance/);
    // The thief leaves; the owner comes back and is recognised again.
    thief.ns.ip('link', 'set', 'eth0', 'down');
    victim.ns.ip('link', 'set', 'eth0', 'up');
    victim.ns.ip('route', 'replace', `${MDS_URL.slice(7)}/32`, 'via', net.network.gateway, 'dev', 'eth0');
    await waitFor('the owner to be served again', () => httpFrom(victim.ns, `${MDS_URL}/latest/meta-data/instance-id`).status === 200, 10000);
  } finally {
    await net.stop();
  }
});
