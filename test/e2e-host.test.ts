// The whole host path, end to end, in network namespaces: libvirt's hook registers a domain,
// mdserver writes dnsmasq's files, a real dnsmasq hands the VM its address over a bridge, and the
// VM reads its metadata from 169.254.169.254 through the route DHCP gave it.
//
//   host namespace: br-mds (10.99.0.1/24 and 169.254.169.254/32), mdserver on 169.254.169.254:80,
//                   dnsmasq started by mdserver-dnsmasq.service's own commands (configuration
//                   written by root, its capabilities, no new privileges), reading mdserver's files
//   VM namespaces:  eth0 (the domain XML's MAC) <- veth -> br-mds; busybox udhcpc, curl, nslookup

import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { domainXml, tempDir, VM1, VM2, writeConfig, type DomainSpec } from './helpers.js';
import { bridge, cleanupNetns, Netns, skipUnlessNetns, veth, waitFor } from './netns.js';
import { cli, HOOK, MDSERVER } from './process.js';
import { readUnit, startUnit } from './unit.js';

const DNSMASQ = '/usr/sbin/dnsmasq';
const MDS = '169.254.169.254';
const GATEWAY = '10.99.0.1';

// What a distribution's udhcpc script does, reduced to this test's needs: apply the address, the
// classless static routes (option 121, which busybox passes as "dest/len gateway" pairs) or else
// the router, and record what the server sent.
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    if [ -n "$staticroutes" ]; then
      # shellcheck disable=SC2086
      set -- $staticroutes
      while [ $# -ge 2 ]; do
        ip route replace "$1" via "$2" dev "$interface"
        shift 2
      done
    elif [ -n "$router" ]; then
      ip route replace default via "$router" dev "$interface"
    fi
    printf 'ip=%s\\nmask=%s\\nrouter=%s\\ndns=%s\\nstaticroutes=%s\\nhostname=%s\\nlease=%s\\n' \\
      "$ip" "$mask" "$router" "$dns" "$staticroutes" "$hostname" "$lease" > "$LEASE_FILE"
    ;;
esac
exit 0
`;

interface Lease {
  ip: string;
  mask: string;
  router: string;
  dns: string;
  staticroutes: string;
  hostname: string;
  lease: string;
}

test('a VM registered by the libvirt hook gets its address from dnsmasq and its metadata from mdserver', skipUnlessNetns([DNSMASQ, 'busybox', 'curl', 'setpriv']), async (t) => {
  const dir = tempDir('mdserver-e2e-');
  const host = Netns.create('mdsh');
  const vms: Netns[] = [];
  const output = { mdserver: '', dnsmasq: (): string => '' };
  try {
    // The host side: a bridge like libvirt's mds network (doc/mds-network.xml).
    bridge(host, 'br-mds', [`${GATEWAY}/24`, `${MDS}/32`]);

    const config = writeConfig(dir, {
      mdserver: { port: 80, listen_address: MDS },
      // dnsmasq runs as root here: the test has no mdserver user to drop to.
      dnsmasq: { net_address: '10.99.0.0', net_prefix: 24, gateway: GATEWAY, interface: 'br-mds', user: 'root', use_dns: 'yes', lease_len: 600 },
    });
    const defaults = path.join(dir, 'default-mdserver');
    fs.writeFileSync(defaults, `MDSERVER_URL=http://${MDS}\n`);
    const script = path.join(dir, 'udhcpc.script');
    fs.writeFileSync(script, UDHCPC_SCRIPT, { mode: 0o755 });

    // mdserver, then dnsmasq from the files it wrote (mdserver-dnsmasq.service starts after
    // mdserver.service reports ready).
    const mdserver = host.spawn(process.execPath, [MDSERVER, config]);
    mdserver.stdout?.on('data', (c: Buffer) => (output.mdserver += c.toString()));
    mdserver.stderr?.on('data', (c: Buffer) => (output.mdserver += c.toString()));
    await waitFor('mdserver on 169.254.169.254:80', () => host.try('curl', ['-sS', '--max-time', '2', `http://${MDS}/service/name`]).stdout === 'mdserver', 30000);
    const unit = startUnit(host, readUnit('mdserver-dnsmasq.service'), {
      '/etc/mdserver/mdserver.conf': config,
      '/usr/local/bin/mdserver': MDSERVER,
      '/run/mdserver-dnsmasq': path.join(dir, 'run-dnsmasq'),
    }, ['--log-facility=-', '--log-dhcp']);
    const dnsmasq = unit.child;
    output.dnsmasq = (): string => unit.output();
    const pidFile = path.join(dir, 'run-dnsmasq', 'mds.pid');
    await waitFor('dnsmasq pid file', () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '');
    const dnsmasqPid = fs.readFileSync(pidFile, 'utf8').trim();

    const hook = (name: string, xml: string): ReturnType<Netns['try']> =>
      host.try('env', [`MDSERVER_DEFAULTS=${defaults}`, 'MDSERVER_HOOK_SYSLOG=no', HOOK, name, 'prepare', 'begin', '-'], xml, 30000);
    const attach = (spec: DomainSpec): Netns => {
      const vm = Netns.create('mdsv');
      vms.push(vm);
      host.ip('link', 'set', veth(host, vm, spec.mac), 'master', 'br-mds');
      return vm;
    };
    // udhcpc asks for option 121 only when told to (-O staticroutes), as dhclient, networkd and
    // NetworkManager do by default; dnsmasq sends only the options a client asks for.
    const dhcp = (vm: Netns, tries = 10): { status: number | null; lease: Lease | null } => {
      const leaseFile = path.join(dir, `${vm.name}.lease`);
      fs.rmSync(leaseFile, { force: true });
      const r = vm.try('env', [`LEASE_FILE=${leaseFile}`, 'busybox', 'udhcpc', '-f', '-q', '-n', '-O', 'staticroutes', '-i', 'eth0', '-s', script, '-t', String(tries), '-T', '1'], undefined, 60000);
      if (r.status !== 0 || !fs.existsSync(leaseFile)) return { status: r.status, lease: null };
      const lease = Object.fromEntries(fs.readFileSync(leaseFile, 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      return { status: r.status, lease: lease as unknown as Lease };
    };
    const get = (vm: Netns, p: string, headers: string[] = []): string =>
      vm.run('curl', ['-sS', '--fail', '--max-time', '5', ...headers.flatMap((h) => ['-H', h]), `http://${MDS}${p}`]);

    // 1. libvirt runs the hook as the domain starts, with its XML on stdin.
    const h1 = hook(VM1.name, domainXml(VM1));
    assert.equal(h1.status, 0, h1.stderr);
    assert.equal(h1.stdout, '');
    const ip1 = /registered test1 mac=52:54:00:3a:cf:41 ipv4=(10\.99\.0\.\d+)/.exec(h1.stderr)?.[1];
    assert.ok(ip1, h1.stderr);
    await waitFor('the dhcp-hosts entry', () => fs.readFileSync(path.join(dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts'), 'utf8').includes(VM1.mac));

    await t.test('the VM gets its allocated address and the classless route to 169.254.169.254 by DHCP', () => {
      const vm1 = attach(VM1);
      const { status, lease } = dhcp(vm1);
      assert.equal(status, 0, output.dnsmasq());
      assert.equal(lease?.ip, ip1);
      assert.equal(lease?.hostname, 'test1');
      assert.equal(lease?.lease, '600');
      assert.equal(lease?.staticroutes, `${MDS}/32 ${GATEWAY} 0.0.0.0/0 ${GATEWAY}`);
      assert.match(vm1.ip('-4', 'addr', 'show', 'eth0'), new RegExp(`inet ${ip1.replace(/\./g, '\\.')}/24 `));
      assert.match(vm1.ip('route', 'show'), new RegExp(`^${MDS.replace(/\./g, '\\.')} via ${GATEWAY.replace(/\./g, '\\.')} dev eth0`, 'm'));
    });

    await t.test('from the VM, curl gets its host name, keys and user-data, and its name resolves through dnsmasq', () => {
      const vm1 = vms[0] as Netns;
      assert.equal(get(vm1, '/latest/meta-data/local-hostname'), 'test1');
      assert.equal(get(vm1, '/latest/meta-data/local-ipv4'), ip1);
      assert.equal(get(vm1, '/latest/meta-data/public-keys/'), '0=default\n1=second');
      assert.equal(get(vm1, '/latest/meta-data/public-keys/0/openssh-key'), 'ssh-ed25519 AAAAdefaultkey user@host');
      // The IMDSv2 way, as cloud-init does on an "aws" platform.
      const token = vm1.run('curl', ['-sS', '--fail', '--max-time', '5', '-X', 'PUT', '-H', 'X-aws-ec2-metadata-token-ttl-seconds: 60', `http://${MDS}/latest/api/token`]);
      const userData = get(vm1, '/latest/user-data', [`X-aws-ec2-metadata-token: ${token}`]);
      assert.match(userData, /^#cloud-config\n/);
      assert.match(userData, /^hostname: "test1"$/m);
      assert.match(userData, /^ {2}- "ssh-ed25519 AAAAdefaultkey user@host"$/m);

      const lease = dhcpLease(dir, vm1);
      assert.equal(lease['dns'], GATEWAY, 'use_dns hands out this dnsmasq');
      // A records only: this dnsmasq has no upstream server, so it refuses what it cannot answer.
      const ns = vm1.run('busybox', ['nslookup', '-type=a', 'test1', GATEWAY]);
      assert.match(ns, new RegExp(`Address:\\s+${ip1.replace(/\./g, '\\.')}`));
    });

    await t.test('a second VM registered while dnsmasq runs gets its lease without restarting dnsmasq', async () => {
      const h2 = hook(VM2.name, domainXml(VM2));
      assert.equal(h2.status, 0, h2.stderr);
      const ip2 = /registered test2 mac=52:54:00:11:22:33 ipv4=(10\.99\.0\.\d+)/.exec(h2.stderr)?.[1];
      assert.ok(ip2, h2.stderr);
      const vm2 = attach(VM2);
      const { status, lease } = dhcp(vm2);
      assert.equal(status, 0, output.dnsmasq());
      assert.equal(lease?.ip, ip2);
      assert.equal(get(vm2, '/latest/meta-data/local-hostname'), 'test2');
      // Same dnsmasq process throughout: the new host entry arrived by SIGHUP.
      assert.equal(fs.readFileSync(pidFile, 'utf8').trim(), dnsmasqPid);
      assert.equal(dnsmasq.exitCode, null);
      assert.match(output.dnsmasq(), /read .*mds\.dhcp-hosts/);
    });

    await t.test('instances delete removes a VM and its lease entry', async () => {
      const vm2 = vms[1] as Netns;
      const del = await cli(['instances', 'delete', 'test2', '--config', config]);
      assert.equal(del.status, 0, del.stderr);
      assert.doesNotMatch(fs.readFileSync(path.join(dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts'), 'utf8'), new RegExp(VM2.mac));
      const list = await cli(['instances', 'list', '--json', '--config', config]);
      assert.deepEqual((JSON.parse(list.stdout) as { name: string }[]).map((i) => i.name), ['test1']);
      // The deleted VM is a stranger to mdserver now, and dnsmasq offers it nothing any more.
      const stranger = vm2.try('curl', ['-sS', '--max-time', '5', `http://${MDS}/latest/meta-data/local-hostname`]);
      assert.match(stranger.stdout, /^Unknown client: 10\.99\.0\.\d+$/);
      vm2.ip('-4', 'addr', 'flush', 'dev', 'eth0');
      assert.notEqual(dhcp(vm2, 2).status, 0, 'a deleted VM must not get a lease');
      // The first VM is untouched.
      assert.equal(dhcp(vms[0] as Netns).lease?.ip, ip1);
    });

    await t.test('with mdserver stopped the hook returns within its timeout and exits 0', async () => {
      mdserver.kill('SIGTERM');
      await waitFor('mdserver to stop', () => mdserver.exitCode !== null, 20000);
      assert.equal(mdserver.exitCode, 0);
      const started = Date.now();
      const h = hook('test5', domainXml({ name: 'test5', uuid: '5f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mac: '52:54:00:11:22:66' }));
      const ms = Date.now() - started;
      assert.equal(h.status, 0);
      assert.equal(h.stdout, '');
      assert.match(h.stderr, /cannot reach mdserver at http:\/\/169\.254\.169\.254\/instance-upload/);
      assert.ok(ms < 7000, `the hook took ${ms} ms`);
    });
  } finally {
    if (process.env['MDSERVER_TEST_LOGS']) process.stderr.write(`--- mdserver\n${output.mdserver}\n--- dnsmasq\n${output.dnsmasq()}\n`);
    cleanupNetns();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function dhcpLease(dir: string, vm: Netns): Record<string, string> {
  const text = fs.readFileSync(path.join(dir, `${vm.name}.lease`), 'utf8');
  return Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}
