// Tenant isolation on a real bridge: a VM that sets its interface to another VM's MAC and address
// is, to mdserver and to the host's neighbour table, that VM; verify_mac cannot tell them apart.
// libvirt's answer is the clean-traffic nwfilter on each VM's interface. libvirtd does not run
// here, so nftables rules on the bridge ports stand in for it, doing what clean-traffic does:
// drop every frame from a port whose source MAC, IP or ARP data are not that port's own, and
// anything but IPv4 and ARP. The test shows the copy getting the victim's user-data without the
// filter, its packets never reaching mdserver with it, the owners still served, and a VM whose
// domain declares no filter refused under require_filter = yes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { skipUnlessNetns, waitFor, type Netns } from './netns.js';
import { httpFrom, MDS_URL, VmNet, type Vm } from './vmnet.js';
import { VM1, VM2 } from './helpers.js';

const netns = skipUnlessNetns(['curl', 'nft']);
const SECRET = 'victim-only-secret-4711';
const USER_DATA = `${MDS_URL}/latest/user-data`;

/** The rules libvirt's clean-traffic filter puts on a VM's port, for the port of `vm`. */
function cleanTrafficRules(vm: Vm): string {
  const port = `iifname "${vm.hostIf}"`;
  return [
    `${port} ether saddr != ${vm.spec.mac} drop`,
    `${port} ether type != { ip, arp } drop`,
    `${port} arp saddr ether != ${vm.spec.mac} drop`,
    `${port} arp saddr ip != { ${vm.ipv4}, 0.0.0.0 } drop`,
    `${port} ip saddr != { ${vm.ipv4}, 0.0.0.0 } drop`,
  ].join('\n    ');
}

function applyCleanTraffic(host: Netns, vms: Vm[]): void {
  // priority -300: before the bridge learns the source MAC and before anything is delivered.
  const ruleset = `table bridge mds_nwfilter {
  chain vm_ports {
    type filter hook prerouting priority -300; policy accept;
    ${vms.map(cleanTrafficRules).join('\n    ')}
  }
}
`;
  host.run('nft', ['-f', '-'], ruleset);
}

/** Makes `vm`'s interface look like `mac` at `ip`, as a guest's root can. */
function takeIdentity(net: VmNet, vm: Vm, mac: string, ip: string): void {
  vm.ns.ip('link', 'set', 'eth0', 'down');
  vm.ns.ip('link', 'set', 'eth0', 'address', mac);
  vm.ns.ip('link', 'set', 'eth0', 'up');
  vm.ns.ip('addr', 'flush', 'dev', 'eth0');
  vm.ns.ip('addr', 'add', `${ip}/${net.network.prefix}`, 'dev', 'eth0');
  vm.ns.ip('route', 'replace', `${MDS_URL.slice(7)}/32`, 'via', net.network.gateway, 'dev', 'eth0');
}

/** How many requests for `path` from `ip` the server's access log shows. */
function logged(net: VmNet, ip: string, path: string): number {
  return net.serverLog().split('\n').filter((l) => l.includes(`${ip} GET ${path} `)).length;
}

test('a VM copying another VM\'s MAC and address reads its user-data without the bridge filter, and never reaches mdserver with it', netns, async () => {
  const net = await VmNet.start({
    sections: { mdserver: { verify_mac: 'yes', require_filter: 'yes' } },
    files: { 'userdata/test1.yaml': `#cloud-config\n# ${SECRET}\n` },
  });
  try {
    const victim = await net.addVm({ ...VM1, nwfilter: 'clean-traffic' });
    const thief = await net.addVm({ ...VM2, nwfilter: 'clean-traffic' });
    assert.match(httpFrom(victim.ns, USER_DATA).body, new RegExp(SECRET));
    assert.doesNotMatch(httpFrom(thief.ns, USER_DATA).body, new RegExp(SECRET));

    // Without the filter: the victim is shut down, the thief takes its MAC and address, and
    // neither the source address nor the neighbour table can tell it from the victim.
    victim.ns.ip('link', 'set', 'eth0', 'down');
    takeIdentity(net, thief, VM1.mac, victim.ipv4);
    await waitFor('the copy to be served as the victim', () => httpFrom(thief.ns, USER_DATA, { timeoutSeconds: 3 }).body.includes(SECRET), 15000);

    // With the filter on every port: the copy's frames are dropped at its own port.
    applyCleanTraffic(net.host, [victim, thief]);
    const seen = logged(net, victim.ipv4, '/latest/user-data');
    assert.ok(seen >= 2, 'the access log shows the requests answered so far');
    for (const mac of [VM1.mac, VM2.mac]) {
      // Its MAC and address copied, then its own MAC with the victim's address: neither gets through.
      takeIdentity(net, thief, mac, victim.ipv4);
      for (let i = 0; i < 3; i++) {
        const r = thief.ns.try('curl', ['-sS', '--max-time', '2', USER_DATA]);
        assert.notEqual(r.status, 0, 'the request must not be answered');
        assert.doesNotMatch(r.stdout, new RegExp(SECRET));
      }
    }
    assert.equal(logged(net, victim.ipv4, '/latest/user-data'), seen, 'no spoofed request reached mdserver');

    // Each owner with its own identity passes the same filter and is served.
    takeIdentity(net, thief, VM2.mac, thief.ipv4);
    victim.ns.ip('link', 'set', 'eth0', 'up');
    victim.ns.ip('route', 'replace', `${MDS_URL.slice(7)}/32`, 'via', net.network.gateway, 'dev', 'eth0');
    await waitFor('the victim to be served again', () => httpFrom(victim.ns, USER_DATA, { timeoutSeconds: 3 }).body.includes(SECRET), 15000);
    await waitFor('the thief to be served its own data', () => httpFrom(thief.ns, `${MDS_URL}/latest/meta-data/hostname`, { timeoutSeconds: 3 }).body === 'test2', 15000);
  } finally {
    await net.stop();
  }
});

test('under require_filter = yes a VM whose domain declares no filter is registered but served no instance data', netns, async () => {
  const net = await VmNet.start({ sections: { mdserver: { require_filter: 'yes' } } });
  try {
    const reply = net.upload(VM1);
    assert.equal(reply.status, 201);
    assert.match(reply.body, /^refused: test1 will be served no instance data \(require_filter = yes\)/m);
    const bare = await net.addVm(VM1);
    for (const p of ['/latest/user-data', '/latest/meta-data/public-keys/0/openssh-key', '/openstack/latest/meta_data.json', '/nocloud/meta-data']) {
      const r = httpFrom(bare.ns, `${MDS_URL}${p}`);
      assert.equal(r.status, 403, p);
      assert.match(r.body, /no trusted nwfilter/, p);
    }
    assert.match(net.serverLog() + net.serverOutput(), /instance without a trusted nwfilter/);
  } finally {
    await net.stop();
  }
});
