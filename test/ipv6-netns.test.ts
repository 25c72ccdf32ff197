// IPv6 end to end in network namespaces: mdserver with ipv6 = yes and dnsmasq started from the
// files it wrote (mdserver-dnsmasq.service's own commands), then VMs as a guest sees them:
//
//   host namespace: br-mds with 10.98.0.1/24, 169.254.169.254/32, fd00:ec2::1/64, and (added
//                   after mdserver started, to prove the retry) fd00:ec2::254 and fe80::a9fe:a9fe
//   VM namespaces:  eth0 (the domain's MAC) <- veth -> br-mds
//     v6only:    no IPv4 at all; the router advertisement says "managed", ISC dhclient -6 gets
//                the fixed address; cloud-init 22.4's DataSourceEc2 reads http://[fd00:ec2::254]
//                with IMDSv2 tokens; curl http://metadata/ resolves through dnsmasq (AAAA)
//     linklocal: only its kernel's fe80:: address; asks fe80::a9fe:a9fe and is found by its MAC
//     dual:      IPv4 and IPv6; `metadata` resolves to both addresses, both answer the same
//     attacker:  takes a stopped VM's IPv6 address (global, then link-local) with its own MAC
//
// Names are resolved inside a private mount namespace whose /etc/resolv.conf is written from
// what DHCPv6 handed out: the machine's own resolver configuration is never touched.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { qemuDmi, runPy, skipUnless, type DatasourceResult } from './cloudinit.js';
import { domainXml, tempDir, writeConfig, type DomainSpec } from './helpers.js';
import { bridge, cleanupNetns, Netns, skipUnlessNetns, veth, waitFor } from './netns.js';
import { MDSERVER } from './process.js';
import { trixieCloudInit } from './trixie.js';
import { readUnit, startUnit } from './unit.js';

const DNSMASQ = '/usr/sbin/dnsmasq';
const DHCLIENT = '/usr/sbin/dhclient';
const MDS4 = '169.254.169.254';
const MDS6 = 'fd00:ec2::254';
const LL = 'fe80::a9fe:a9fe';
const GW4 = '10.98.0.1';
const GW6 = 'fd00:ec2::1';
const DOMAIN = 'vm.test';

const V6ONLY: DomainSpec = { name: 'v6only', uuid: '1b5b1e0c-1111-4a7a-9e3c-1b2d3e4f5a61', mac: '52:54:00:6a:00:01' };
const LINKLOCAL: DomainSpec = { name: 'linklocal', uuid: '2c6c2f1d-2222-4b8b-8f4d-2c3e4f5a6b72', mac: '52:54:00:6a:00:02' };
const DUAL: DomainSpec = { name: 'dual', uuid: '3d7d3a2e-3333-4c9c-9a5e-3d4f5a6b7c83', mac: '52:54:00:6a:00:03' };
const VICTIM: DomainSpec = { name: 'victim', uuid: '4e8e4b3f-4444-4dad-8b6f-4e5f6a7b8c94', mac: '52:54:00:6a:00:04' };
const ATTACKER: DomainSpec = { name: 'attacker', uuid: '5f9f5c4a-5555-4ebe-9c7a-5f6a7b8c9da5', mac: '52:54:00:6a:00:05' };

/**
 * What dhclient-script does, reduced to what this test needs: the address (as /128, the
 * prefix is on-link from the router advertisement) and a record of the DNS servers and search
 * list DHCPv6 gave. Never resolv.conf: that is the machine's.
 */
const dhclientScript = (leaseOut: string): string => `#!/bin/sh
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6)
    ip -6 addr add "$new_ip6_address/128" dev "$interface" nodad
    printf 'address=%s\\ndns=%s\\nsearch=%s\\n' "$new_ip6_address" "$new_dhcp6_name_servers" "$new_dhcp6_domain_search" > '${leaseOut}'
    ;;
esac
exit 0
`;

/** The EUI-64 link-local address the kernel gives an interface with this MAC. */
function eui64(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  b[0] = (b[0] as number) ^ 2;
  const h = (i: number): string => (((b[i] as number) << 8) | (b[i + 1] as number)).toString(16);
  return `fe80::${h(0)}:${((b[2] as number) << 8 | 0xff).toString(16)}:${(0xfe00 | (b[3] as number)).toString(16)}:${h(4)}`;
}

test('IPv6-only, link-local and dual-stack VMs find mdserver by address and by name', skipUnlessNetns([DNSMASQ, DHCLIENT, 'busybox', 'curl', 'setpriv', 'unshare']), async (t) => {
  const dir = tempDir('mdserver-v6-');
  const host = Netns.create('mds6h');
  const output = { mdserver: '', dnsmasq: (): string => '' };
  const vms = new Map<string, Netns>();
  try {
    bridge(host, 'br-mds', [`${GW4}/24`, `${MDS4}/32`, `${GW6}/64`]);
    const configFile = writeConfig(dir, {
      mdserver: { port: 80, listen_address: MDS4, ipv6: 'yes', logfile: path.join(dir, 'mdserver.log') },
      loglevels: { base: 'debug', file: 'debug' },
      dnsmasq: { net_address: '10.98.0.0', net_prefix: 24, gateway: GW4, interface: 'br-mds', user: 'root', use_dns: 'yes', domain: DOMAIN, lease_len: 600 },
    });
    const mdserver = host.spawn(process.execPath, [MDSERVER, configFile]);
    mdserver.stdout?.on('data', (c: Buffer) => (output.mdserver += c.toString()));
    mdserver.stderr?.on('data', (c: Buffer) => (output.mdserver += c.toString()));
    const status = (): { healthy: boolean; problems: string[] } =>
      JSON.parse(host.try(process.execPath, [MDSERVER, 'status', '--json', '--config', configFile]).stdout || '{"healthy":false,"problems":[]}') as { healthy: boolean; problems: string[] };
    await waitFor('mdserver on 169.254.169.254', () => host.try('curl', ['-sS', '--max-time', '2', `http://${MDS4}/service/name`]).stdout === 'mdserver', 30000);

    await t.test('IPv6 addresses missing from the bridge: IPv4 is served, status says degraded, and they are bound once added', async () => {
      assert.match(status().problems.join('\n'), /metadata IPv6 listener fd00:ec2::254 port 80 is not bound \(retrying\)/);
      assert.match(status().problems.join('\n'), /metadata link-local listener fe80::a9fe:a9fe%br-mds port 80 is not bound/);
      host.ip('addr', 'add', `${MDS6}/64`, 'dev', 'br-mds', 'nodad');
      host.ip('addr', 'add', `${LL}/64`, 'dev', 'br-mds', 'nodad');
      await waitFor('the IPv6 listeners', () => !status().problems.some((p) => p.includes('listener')), 20000);
      assert.equal(host.run('curl', ['-sS', '--max-time', '2', `http://[${MDS6}]/service/name`]), 'mdserver');
    });

    const unit = startUnit(host, readUnit('mdserver-dnsmasq.service'), {
      '/etc/mdserver/mdserver.conf': configFile,
      '/usr/local/bin/mdserver': MDSERVER,
      '/run/mdserver-dnsmasq': path.join(dir, 'run-dnsmasq'),
    }, ['--log-facility=-', '--log-dhcp']);
    output.dnsmasq = (): string => unit.output();
    await waitFor('dnsmasq', () => fs.existsSync(path.join(dir, 'run-dnsmasq', 'mds.pid')));

    const register = (spec: DomainSpec): { ipv4: string; ipv6: string } => {
      const r = host.try('curl', ['-sS', '--max-time', '5', '--data-binary', '@-', `http://${MDS4}/instance-upload`], domainXml(spec));
      const m = /ipv4=(\S+) ipv6=(\S+)/.exec(r.stdout);
      assert.ok(m, `${r.stdout}${r.stderr}`);
      return { ipv4: m[1] as string, ipv6: m[2] as string };
    };
    const attach = (spec: DomainSpec): Netns => {
      const vm = Netns.create('mds6v');
      vms.set(spec.name, vm);
      // A fresh link's addresses are usable at once (no duplicate address detection wait).
      vm.run('sysctl', ['-qw', 'net.ipv6.conf.default.accept_dad=0']);
      host.ip('link', 'set', veth(host, vm, spec.mac), 'master', 'br-mds');
      return vm;
    };
    const dhcp6 = (vm: Netns): Record<string, string> => {
      // dhclient runs its script with its own environment only: the output path is written in.
      const out = path.join(dir, `${vm.name}.lease6`);
      const script = path.join(dir, `${vm.name}.dhclient-script`);
      fs.writeFileSync(script, dhclientScript(out), { mode: 0o755 });
      const r = vm.try(DHCLIENT, ['-6', '-1', '-v', '-sf', script, '-lf', path.join(dir, `${vm.name}.leases`),
        '-pf', path.join(dir, `${vm.name}.pid`), 'eth0'], undefined, 60000);
      assert.equal(r.status, 0, `${r.stderr}\n${output.dnsmasq()}`);
      // -1 leaves dhclient running after it is bound: stop it, the address stays.
      vm.try('sh', ['-c', `kill $(cat ${path.join(dir, `${vm.name}.pid`)}) 2>/dev/null; true`]);
      return Object.fromEntries(fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    };
    /** Runs `cmd` in `vm` with /etc/resolv.conf (in a private mount namespace) naming what DHCPv6 gave. */
    const withResolver = (vm: Netns, lease: Record<string, string>, cmd: string[]): ReturnType<Netns['try']> => {
      const conf = path.join(dir, `${vm.name}.resolv.conf`);
      fs.writeFileSync(conf, `nameserver ${(lease['dns'] ?? '').trim()}\nsearch ${(lease['search'] ?? '').trim().replace(/\.$/, '')}\n`);
      const sh = `mount --bind ${conf} /etc/resolv.conf && exec "$@"`;
      return vm.try('unshare', ['-m', '--propagation', 'private', 'sh', '-c', sh, 'sh', ...cmd], undefined, 30000);
    };

    const v6only = register(V6ONLY);
    const vm1 = attach(V6ONLY);
    let lease: Record<string, string> = {};
    await t.test('an IPv6-only VM gets its fixed address and the DNS server by DHCPv6 after a managed router advertisement', async () => {
      await waitFor('a router advertisement', () => /^fd00:ec2::\/64 dev eth0/m.test(vm1.ip('-6', 'route', 'show')), 20000);
      lease = dhcp6(vm1);
      assert.equal(lease['address'], v6only.ipv6);
      assert.equal(lease['dns']?.trim(), GW6);
      assert.equal(lease['search']?.trim(), `${DOMAIN}.`);
      assert.doesNotMatch(vm1.ip('-4', 'addr', 'show'), /inet 10\./, 'no IPv4 address at all');
      assert.match(vm1.ip('-6', 'addr', 'show', 'eth0'), new RegExp(`inet6 ${v6only.ipv6}/128`));
    });

    await t.test("cloud-init 22.4's own DataSourceEc2 reads http://[fd00:ec2::254], IMDSv2 tokens and all", skipUnless({ cloudInit: true }), () => {
      const work = tempDir('mdserver-v6-ci-');
      const r = runPy<DatasourceResult>('ec2_datasource.py', { platform: 'aws', url: `http://[${MDS6}]`, work, iface: 'eth0' }, { ns: vm1, timeoutMs: 120000 });
      assert.equal(r.get_data, true, r.log.slice(-3000));
      assert.equal(r.instance_id, `i-${v6only.ipv4}`);
      assert.equal(r.hostname, 'v6only');
      assert.ok((r.public_keys ?? []).length > 0);
      assert.match(r.userdata_raw ?? '', /^#cloud-config/);
      // IMDSv2: the token was asked for, and the metadata read, from the VM's own IPv6 address.
      const log = fs.readFileSync(path.join(dir, 'mdserver.log'), 'utf8');
      assert.match(log, new RegExp(`${v6only.ipv6} PUT /latest/api/token 200`));
      assert.match(log, new RegExp(`${v6only.ipv6} GET /2021-03-23/meta-data/instance-id 200`));
      const eth = (r.network_config as { ethernets: Record<string, Record<string, unknown>> }).ethernets;
      assert.equal(Object.values(eth)[0]?.['dhcp6'], true, JSON.stringify(r.network_config));
    });

    await t.test('curl http://metadata/ resolves through dnsmasq (AAAA) and answers; unknown names in the domain are NXDOMAIN', () => {
      const r = withResolver(vm1, lease, ['curl', '-sS', '--max-time', '5', 'http://metadata/latest/meta-data/instance-id']);
      assert.equal(r.stdout, `i-${v6only.ipv4}`, r.stderr);
      assert.equal(withResolver(vm1, lease, ['curl', '-sS', '--max-time', '5', `http://metadata.${DOMAIN}/latest/meta-data/ipv6`]).stdout, v6only.ipv6);
      const nx = vm1.try('busybox', ['nslookup', '-type=AAAA', `does-not-exist.${DOMAIN}`, GW6]);
      assert.match(nx.stdout + nx.stderr, /NXDOMAIN/);
      const own = vm1.try('busybox', ['nslookup', '-type=AAAA', `v6only.${DOMAIN}`, GW6]);
      assert.match(own.stdout, new RegExp(v6only.ipv6));
    });

    register(LINKLOCAL);
    const vm2 = attach(LINKLOCAL);
    await t.test('a VM with only a link-local address reads fe80::a9fe:a9fe and is found through the neighbour table', () => {
      assert.doesNotMatch(vm2.ip('addr', 'show', 'eth0'), /inet6 fd00|inet /);
      const r = vm2.try('curl', ['-sS', '--max-time', '5', `http://[${LL}%eth0]/openstack/latest/meta_data.json`]);
      assert.equal((JSON.parse(r.stdout || '{}') as { uuid?: string }).uuid, LINKLOCAL.uuid, `${r.stdout}${r.stderr}`);
      // Its cloud-init is told to report to the global address: a link-local URL would need the
      // guest's own interface name.
      const v = vm2.try('curl', ['-sS', '--max-time', '5', `http://[${LL}%eth0]/openstack/latest/vendor_data.json`]);
      assert.match(v.stdout, /http:\/\/\[fd00:ec2::254\]\/cloud-init\/events/, `${v.stdout}${v.stderr}`);
    });

    await t.test("cloud-init 25.1's OpenStack datasource finds fe80::a9fe:a9fe with its default URLs from an IPv6-only VM", skipUnless({ cloudInit: true }), () => {
      const lib = trixieCloudInit();
      const work = tempDir('mdserver-v6-os-');
      const dmi = path.join(work, 'dmi');
      fs.mkdirSync(dmi);
      for (const [k, v] of Object.entries({ ...qemuDmi(LINKLOCAL.uuid), product_name: 'OpenStack Nova' })) fs.writeFileSync(path.join(dmi, k), `${v}\n`);
      const r = runPy<{ cloud_init_version: string; cloud_init_path: string; found: boolean; metadata_address?: string; uuid?: string; hostname?: string;
        network_config?: { config?: { type: string; subnets?: { type: string }[] }[] } }>('openstack_default_urls.py', { dmi, work }, { ns: vm2, pythonPath: lib, timeoutMs: 120000 });
      assert.match(r.cloud_init_version, /^25\.1/);
      assert.ok(r.cloud_init_path.startsWith(lib), r.cloud_init_path);
      assert.equal(r.found, true, r.log.slice(-3000));
      assert.equal(r.metadata_address, `http://[${LL}%25eth0]`);
      assert.equal(r.uuid, LINKLOCAL.uuid);
      assert.equal(r.hostname, 'linklocal');
      const subnets = (r.network_config?.config ?? []).flatMap((c) => c.subnets ?? []).map((s) => s.type);
      assert.deepEqual(subnets, ['dhcp4', 'dhcp6'], JSON.stringify(r.network_config));
    });

    const dual = register(DUAL);
    const vm3 = attach(DUAL);
    await t.test('a dual-stack VM resolves metadata to both addresses and gets the same data over each', async () => {
      vm3.ip('addr', 'add', `${dual.ipv4}/24`, 'dev', 'eth0');
      vm3.ip('route', 'add', `${MDS4}/32`, 'via', GW4);
      await waitFor('a router advertisement', () => /^fd00:ec2::\/64 dev eth0/m.test(vm3.ip('-6', 'route', 'show')), 20000);
      const l = dhcp6(vm3);
      const hosts = withResolver(vm3, l, ['getent', 'ahosts', 'metadata']).stdout;
      assert.match(hosts, /^169\.254\.169\.254\s/m);
      assert.match(hosts, /^fd00:ec2::254\s/m);
      const over = (flag: string): string => withResolver(vm3, l, ['curl', flag, '-sS', '--max-time', '5', 'http://metadata/latest/meta-data/instance-id']).stdout;
      assert.equal(over('-4'), `i-${dual.ipv4}`);
      assert.equal(over('-6'), `i-${dual.ipv4}`);
      // A token is bound to the caller that asked for it: the IPv6-only VM's is no good here.
      const put = ['-sS', '--max-time', '5', '-X', 'PUT', '-H', 'X-aws-ec2-metadata-token-ttl-seconds: 60', `http://[${MDS6}]/latest/api/token`];
      const token = vm1.run('curl', put);
      const get = ['-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', '-H', `X-aws-ec2-metadata-token: ${token}`, `http://[${MDS6}]/latest/meta-data/instance-id`];
      assert.equal(vm1.run('curl', get), '200');
      assert.equal(vm3.run('curl', get), '401');
    });

    // The victim is registered but stopped; the attacker is a VM of its own with its own MAC.
    const victim = register(VICTIM);
    register(ATTACKER);
    const vm4 = attach(ATTACKER);
    const askAs = (source: string, url: string): { status: string; body: string } => {
      const r = vm4.try('curl', ['-sS', '--max-time', '5', '-w', '\n%{http_code}', url]);
      const i = r.stdout.lastIndexOf('\n');
      return { body: r.stdout.slice(0, i), status: r.stdout.slice(i + 1) || `${source}: ${r.stderr}` };
    };
    const setVerify = async (on: boolean): Promise<void> => {
      const text = fs.readFileSync(configFile, 'utf8').replace(/\nverify_mac = \w+/, '');
      fs.writeFileSync(configFile, text.replace('[mdserver]\n', `[mdserver]\nverify_mac = ${on ? 'yes' : 'no'}\n`));
      const r = host.try(process.execPath, [MDSERVER, 'reload', '--config', configFile]);
      assert.equal(r.status, 0, r.stderr);
    };

    await t.test("spoofing: a VM using a stopped VM's IPv6 address with its own MAC is refused with verify_mac", async () => {
      vm4.ip('-6', 'addr', 'add', `${victim.ipv6}/64`, 'dev', 'eth0', 'nodad');
      await waitFor('a router advertisement', () => /^fd00:ec2::\/64 dev eth0/m.test(vm4.ip('-6', 'route', 'show')), 20000);
      const url = `http://[${MDS6}]/latest/meta-data/instance-id`;
      // Without the check the stolen address is all it takes: this is what verify_mac stops.
      assert.deepEqual(askAs(victim.ipv6, url), { status: '200', body: `i-${victim.ipv4}` });
      await setVerify(true);
      const refused = askAs(victim.ipv6, url);
      assert.equal(refused.status, '403');
      assert.doesNotMatch(refused.body, new RegExp(victim.ipv4.replace(/\./g, '\\.')));
      vm4.ip('-6', 'addr', 'del', `${victim.ipv6}/64`, 'dev', 'eth0');
    });

    await t.test("spoofing: a VM using a stopped VM's link-local address with its own MAC is refused with verify_mac", async () => {
      vm4.ip('-6', 'addr', 'flush', 'dev', 'eth0', 'scope', 'link');
      vm4.ip('-6', 'addr', 'add', `${eui64(VICTIM.mac)}/64`, 'dev', 'eth0', 'nodad');
      const url = `http://[${LL}%eth0]/openstack/latest/meta_data.json`;
      const refused = askAs(eui64(VICTIM.mac), url);
      assert.equal(refused.status, '403', refused.body);
      assert.doesNotMatch(refused.body, new RegExp(VICTIM.uuid));
      // Without verify_mac the caller is still found by its own MAC: its own data, never the victim's.
      await setVerify(false);
      const own = askAs(eui64(VICTIM.mac), url);
      assert.equal(own.status, '200');
      assert.equal((JSON.parse(own.body) as { uuid: string }).uuid, ATTACKER.uuid);
    });
  } finally {
    if (process.env['MDSERVER_TEST_LOGS']) process.stderr.write(`--- mdserver\n${output.mdserver}\n--- dnsmasq\n${output.dnsmasq()}\n`);
    cleanupNetns();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
