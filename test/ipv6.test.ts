// IPv6 without a network: the addresses instances get (derived from their IPv4 ones, never the
// host's), the settings that refuse a bad prefix, the dnsmasq lines and metadata answers IPv6
// adds (and that an IPv4-only configuration keeps as it was), the neighbour table parser, and
// listeners that cannot be bound yet: retried and reported, never stopping the IPv4 one.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, test } from 'node:test';
import { ipv4Allocator } from '../src/instances/allocation.js';
import { checkHosts, renderConf, renderDhcpHosts, renderDnsHosts, renderOpts } from '../src/dnsmasq/render.js';
import { canonicalIPv6, eui64Mac, formatIPv6, ipv4ForIPv6, ipv6ForIPv4, isLinkLocal6, parseIPv6, withIPv6, type Plan6 } from '../src/net/ip6.js';
import { net4, parseIPv4 } from '../src/net/ip.js';
import { ListenerSet } from '../src/net/listeners.js';
import { NeighbourTable6, parseNeighbours6 } from '../src/net/neighbours.js';
import { instanceData } from '../src/metadata/instanceData.js';
import { ec2Tree } from '../src/metadata/ec2.js';
import { networkData } from '../src/metadata/openstack.js';
import { nocloudNetworkConfig } from '../src/metadata/nocloud.js';
import { isDir, type Dir } from '../src/metadata/tree.js';
import { loadConfig, type Config } from '../src/config/index.js';
import type { Instance } from '../src/store/store.js';
import { domainXml, iniText, request, tempDir, VM1, withVms } from './helpers.js';
import { cli } from './process.js';
import fs from 'node:fs';
import path from 'node:path';

function configFor(sections: Record<string, Record<string, string>>): { config: Config | null; error: string } {
  const dir = tempDir();
  const file = path.join(dir, 'mdserver.conf');
  fs.writeFileSync(file, iniText(sections));
  try {
    return { config: loadConfig(file).config, error: '' };
  } catch (e) {
    return { config: null, error: String(e) };
  }
}

function cfg(sections: Record<string, Record<string, string>> = {}): Config {
  const r = configFor({ ...sections, mdserver: { ipv6: 'yes', ...(sections['mdserver'] ?? {}) } });
  assert.ok(r.config, r.error);
  return r.config;
}

const PLAN: Plan6 = { network: parseIPv6('fd00:ec2::') as bigint, prefix: 64, net4: net4(parseIPv4('10.122.0.0') as number, 16), reserved: [parseIPv6('fd00:ec2::1') as bigint, parseIPv6('fd00:ec2::254') as bigint] };

describe('IPv6 addresses', () => {
  test('parsing and printing give the canonical form, whatever form was written', () => {
    for (const [given, canonical] of [
      ['FD00:0EC2:0:0:0:0:0:0254', 'fd00:ec2::254'], ['fe80::a9fe:a9fe%br-mds', 'fe80::a9fe:a9fe'], ['::ffff:10.1.2.3', '::ffff:a01:203'],
      ['1:0:0:1:0:0:0:1', '1:0:0:1::1'], ['::', '::'], ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'], ['1::', '1::'],
    ]) assert.equal(canonicalIPv6(given as string), canonical, given);
    for (const bad of ['10.0.0.1', 'fd00::ec2::1', 'g::1', '']) assert.equal(parseIPv6(bad), null, bad);
    assert.equal(formatIPv6(0n), '::');
  });

  test("an instance's address is its IPv4 host part in the last 32 bits, and maps back", () => {
    assert.equal(ipv6ForIPv4(PLAN, '10.122.3.7'), 'fd00:ec2::307');
    assert.equal(ipv6ForIPv4(PLAN, '10.122.255.254'), 'fd00:ec2::fffe');
    assert.equal(ipv4ForIPv6(PLAN, 'fd00:ec2::307'), '10.122.3.7');
    assert.equal(ipv4ForIPv6(PLAN, 'FD00:EC2:0::307'), '10.122.3.7');
  });

  test('no instance gets, or is found by, the gateway or the metadata address', () => {
    // 10.122.0.1 is the IPv4 gateway anyway; 10.122.2.84 would be fd00:ec2::254.
    assert.equal(ipv6ForIPv4(PLAN, '10.122.2.84'), null);
    assert.equal(ipv4ForIPv6(PLAN, 'fd00:ec2::254'), null);
    assert.equal(ipv4ForIPv6(PLAN, 'fd00:ec2::1'), null);
    const allocate = ipv4Allocator(cfg());
    // Every address but .84 (fd00:ec2::254) is used: the pool is full rather than handing it out.
    assert.equal(allocate((ip) => ip !== '10.122.2.84'), null);
  });

  test('a source outside the prefix, or between the prefix and the last 32 bits, is no instance', () => {
    for (const s of ['fd00:ec3::307', 'fd00:ec2::1:0:307', 'fd00:ec2::1:0', 'fe80::307', '10.122.3.7']) assert.equal(ipv4ForIPv6(PLAN, s), null, s);
    // A record from another IPv4 network (an import) gets no address rather than a wrong one.
    assert.equal(ipv6ForIPv4(PLAN, '192.168.1.5'), null);
  });

  test('records get the derived address with a plan (an imported one too), and keep what they had without', () => {
    const imported = { ipv4: '10.122.3.7', ipv6: '2001:db8::99' };
    assert.deepEqual(withIPv6(imported, PLAN), { ipv4: '10.122.3.7', ipv6: 'fd00:ec2::307' });
    assert.equal(withIPv6(imported, null), imported);
  });

  test('link-local addresses, and the MAC an EUI-64 one was made from', () => {
    assert.ok(isLinkLocal6('fe80::1') && isLinkLocal6('febf::1') && !isLinkLocal6('fec0::1') && !isLinkLocal6('fd00:ec2::1'));
    assert.equal(eui64Mac('fe80::5054:ff:fe3a:cf41'), '52:54:00:3a:cf:41');
    assert.equal(eui64Mac('fe80::1c2b:3a4d:5e6f:7081'), null);
  });
});

describe('IPv6 settings', () => {
  test('off when absent, as in md_server; the defaults when on', () => {
    const off = configFor({}).config as Config;
    assert.equal(off.mdserver.ipv6, false);
    assert.equal(off.dnsmasq.plan6, null);
    const on = cfg();
    assert.equal(on.mdserver.listenAddress6, 'fd00:ec2::254');
    assert.equal(on.dnsmasq.gateway6, 'fd00:ec2::1');
    assert.deepEqual(on.dnsmasq.serviceNames, ['metadata', 'instance-data', 'data-server']);
  });

  test('a bad value is refused naming its file, key and value', () => {
    const cases: [Record<string, Record<string, string>>, RegExp][] = [
      [{ dnsmasq: { net6_prefix: '96' } }, /\[dnsmasq\] net6_prefix = "96": expected a whole number from 16 to 64/],
      [{ dnsmasq: { net6_address: 'fd00:ec2::5' } }, /net6_address = "fd00:ec2::5": has host bits set for prefix \/64/],
      [{ dnsmasq: { gateway6: 'fd00:ec3::1' } }, /gateway6 = "fd00:ec3::1": must be a host address inside fd00:ec2::\/64/],
      [{ mdserver: { listen_address6: 'fe80::1%eth0' } }, /listen_address6 = "fe80::1%eth0": expected an IPv6 address/],
      [{ mdserver: { ipv6: 'maybe' } }, /ipv6 = "maybe": expected a boolean/],
      [{ dnsmasq: { service_names: 'metadata bad_name' } }, /service_names = "metadata bad_name": "bad_name" is not a host name label/],
    ];
    for (const [sections, message] of cases) {
      const r = configFor(sections);
      assert.equal(r.config, null, JSON.stringify(sections));
      assert.match(r.error, message);
      assert.match(r.error, /mdserver\.conf/);
    }
  });
});

describe('dnsmasq files with IPv6', () => {
  const c = cfg({ dnsmasq: { use_dns: 'yes', domain: 'vm.example' } });
  const hosts = [{ hostName: 'web1', mac: '52:54:00:3a:cf:41', ipv4: '10.122.3.7', ipv6: 'fd00:ec2::307' }];

  test('router advertisements and DHCPv6 of fixed addresses only, and DNS over IPv6', () => {
    assert.match(renderConf(c), /^enable-ra$/m);
    assert.match(renderConf(c), /^dhcp-range=fd00:ec2::,static,64,86400$/m);
    assert.match(renderOpts(c), /^option6:dns-server,\[fd00:ec2::1\]$/m);
    assert.equal(renderDhcpHosts(checkHosts(hosts).safe, 600), '52:54:00:3a:cf:41,id:*,10.122.3.7,[fd00:ec2::307],web1,600\n');
  });

  test('the service names resolve to both metadata addresses, also under the domain; data-server to the IPv4 one only', () => {
    const dns = renderDnsHosts(c, checkHosts(hosts).safe);
    const names = 'metadata metadata.vm.example instance-data instance-data.vm.example';
    const cs = 'data-server data-server.vm.example';
    // CloudStack's datasource cannot use an IPv6 address it resolved (see test/cloudstack-netns.test.ts).
    assert.equal(dns, `169.254.169.254 ${names} ${cs}\nfd00:ec2::254 ${names}\n10.122.3.7 web1\nfd00:ec2::307 web1\n`);
    assert.match(renderConf(c), /^local=\/vm\.example\/$/m, 'unknown names in the domain are NXDOMAIN, not forwarded');
  });

  test('a tenant who names a domain "metadata" does not get the name', () => {
    const squatter = [{ hostName: 'Metadata', mac: '52:54:00:00:00:66', ipv4: '10.122.0.66', ipv6: 'fd00:ec2::42' }];
    assert.doesNotMatch(renderDnsHosts(c, checkHosts(squatter).safe), /^10\.122\.0\.66|^fd00:ec2::42/m);
    assert.equal(renderDhcpHosts(checkHosts(squatter).safe, 600, c.dnsmasq.serviceNames), '52:54:00:00:00:66,id:*,10.122.0.66,[fd00:ec2::42],600\n');
  });

  test('an IPv4-only configuration writes no IPv6 line', () => {
    const off = configFor({ dnsmasq: { use_dns: 'yes' } }).config as Config;
    assert.doesNotMatch(renderConf(off) + renderOpts(off), /enable-ra|option6|fd00/);
    assert.doesNotMatch(renderDnsHosts(off, checkHosts([]).safe), /:/);
  });
});

function leaf(d: Dir, ...p: string[]): string | undefined {
  let n: Dir | string | undefined = d;
  for (const s of p) {
    if (n === undefined || typeof n === 'string' || !isDir(n)) return undefined;
    n = n.entries.get(s) as Dir | string | undefined;
  }
  return typeof n === 'string' ? n : undefined;
}

describe('metadata with IPv6', () => {
  const inst: Instance = {
    name: 'web1', hostName: 'web1', uuid: 'becb25c7-b581-4ecd-b60e-a9942ad18879', mac: '52:54:00:3a:cf:41', ipv4: '10.122.3.7',
    ipv6: null, location: 'here', metadata: {}, arch: null, nwfilter: null, host: 'kvm-1', firstSeen: 0, lastUpdate: 0,
  };

  test('EC2 lists ipv6s and the IPv6 blocks, as on an IPv6 instance; IPv4 answers stay', () => {
    const c = cfg();
    const tree = ec2Tree(instanceData(withIPv6(inst, c.dnsmasq.plan6), c), c);
    const mac = ['meta-data', 'network', 'interfaces', 'macs', inst.mac];
    assert.equal(leaf(tree, ...mac, 'ipv6s'), 'fd00:ec2::307');
    assert.equal(leaf(tree, ...mac, 'subnet-ipv6-cidr-blocks'), 'fd00:ec2::/64');
    assert.equal(leaf(tree, ...mac, 'vpc-ipv6-cidr-blocks'), 'fd00:ec2::/64');
    assert.equal(leaf(tree, 'meta-data', 'ipv6'), 'fd00:ec2::307');
    assert.equal(leaf(tree, 'meta-data', 'local-ipv4'), '10.122.3.7');
    const off = configFor({}).config as Config;
    const plain = ec2Tree(instanceData(inst, off), off);
    assert.equal(leaf(plain, ...mac, 'ipv6s'), undefined);
    assert.equal(leaf(plain, 'meta-data', 'ipv6'), undefined);
  });

  test('OpenStack and NoCloud network documents add DHCPv6, or the static address with its route and DNS', () => {
    const dhcp = cfg();
    const d = instanceData(withIPv6(inst, dhcp.dnsmasq.plan6), dhcp);
    assert.deepEqual((networkData(d, dhcp)['networks'] as { type: string }[]).map((n) => n.type), ['ipv4_dhcp', 'ipv6_dhcp']);
    assert.deepEqual(nocloudNetworkConfig(d, dhcp), { version: 2, ethernets: { mds0: { match: { macaddress: inst.mac }, dhcp4: true, dhcp6: true } } });
    const fixed = cfg({ openstack: { network: 'static' }, nocloud: { network: 'static' }, dnsmasq: { use_dns: 'yes' } });
    const s = instanceData(withIPv6(inst, fixed.dnsmasq.plan6), fixed);
    const v6 = (networkData(s, fixed)['networks'] as Record<string, unknown>[])[1];
    assert.deepEqual(v6, {
      id: 'network1', type: 'ipv6', link: 'tap003acf41', ip_address: 'fd00:ec2::307', netmask: 'ffff:ffff:ffff:ffff::',
      routes: [{ network: '::', netmask: '::', gateway: 'fd00:ec2::1' }], network_id: (v6 as { network_id: string }).network_id,
      services: [{ type: 'dns', address: 'fd00:ec2::1' }],
    });
    const nic = (nocloudNetworkConfig(s, fixed) as { ethernets: { mds0: Record<string, unknown> } }).ethernets.mds0;
    assert.deepEqual(nic['addresses'], ['10.122.3.7/16', 'fd00:ec2::307/64']);
    assert.deepEqual(nic['routes'], [{ to: '0.0.0.0/0', via: '10.122.0.1' }, { to: '::/0', via: 'fd00:ec2::1' }]);
  });
});

describe('the IPv6 neighbour table', () => {
  const text = [
    'fe80::5054:ff:fe3a:cf41 dev br-mds lladdr 52:54:00:3A:CF:41 REACHABLE',
    'fd00:ec2:0::307 dev br-mds lladdr 52:54:00:3a:cf:41 STALE',
    'fe80::5054:ff:fe3a:cf41 dev other lladdr 52:54:00:99:99:99 router DELAY',
    'fd00:ec2::9 dev br-mds FAILED',
    'fd00:ec2::a dev br-mds INCOMPLETE',
  ].join('\n');

  test('entries with a link-layer address, per interface', () => {
    const t = parseNeighbours6(text);
    assert.deepEqual(t.get('fe80::5054:ff:fe3a:cf41'), [{ dev: 'br-mds', mac: '52:54:00:3a:cf:41' }, { dev: 'other', mac: '52:54:00:99:99:99' }]);
    assert.deepEqual(t.get('fd00:ec2::307'), [{ dev: 'br-mds', mac: '52:54:00:3a:cf:41' }]);
    assert.equal(t.get('fd00:ec2::9'), undefined);
  });

  test('a flood of unknown sources shares one read of the table per gap, not one per request', async () => {
    let reads = 0;
    const table = new NeighbourTable6(async () => (reads++, text), 60000, 50);
    const waits: Array<Promise<void> | undefined> = [];
    for (let i = 0; i < 1000; i++) waits.push(table.settle(`fe80::${i.toString(16)}`, 'br-mds'));
    await Promise.all(waits.filter((w) => w !== undefined));
    assert.equal(reads, 1);
    for (let i = 0; i < 1000; i++) assert.equal(table.macOf(`fe80::${i.toString(16)}`, 'br-mds'), undefined);
    assert.equal(table.macOf('fe80::5054:ff:fe3a:cf41', 'other'), '52:54:00:99:99:99');
    assert.equal(table.settle('fe80::5054:ff:fe3a:cf41', 'other'), undefined, 'a known caller does not wait');
  });

  test('a VM that appears while a read is running is found by the next read, not refused', async () => {
    let current = '';
    let release: () => void = () => {};
    let reads = 0;
    const table = new NeighbourTable6(async () => {
      reads++;
      const seen = current;
      await new Promise<void>((r) => (release = r));
      return seen;
    }, 60000, 10);
    const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 1));
    const first = table.settle('fe80::1', 'br-mds');
    while (reads === 0) await tick();
    // The VM's entry arrives after that read looked at the table.
    current = 'fe80::5054:ff:fe3a:cf41 dev br-mds lladdr 52:54:00:3a:cf:41 REACHABLE';
    const late = table.settle('fe80::5054:ff:fe3a:cf41', 'br-mds');
    release();
    await first;
    assert.equal(table.macOf('fe80::5054:ff:fe3a:cf41', 'br-mds'), undefined, 'the first read could not see it');
    while (reads === 1) await tick();
    release();
    await late;
    assert.equal(reads, 2);
    assert.equal(table.macOf('fe80::5054:ff:fe3a:cf41', 'br-mds'), '52:54:00:3a:cf:41');
  });
});

describe('listeners', () => {
  test('an address that cannot be bound is reported and retried, and binds once it can', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    const set = new ListenerSet({ firstMs: 50, maxMs: 100 });
    const main = http.createServer((_q, s) => s.end('main'));
    const extra = http.createServer((_q, s) => s.end('extra'));
    try {
      await set.add(main, { label: 'main', address: '127.0.0.1', port: 0, required: true });
      await set.add(extra, { label: 'extra', address: '127.0.0.1', port });
      assert.match(set.problems().join('\n'), new RegExp(`extra listener 127\\.0\\.0\\.1 port ${port} is not bound \\(retrying\\): .*EADDRINUSE`));
      const mainPort = (main.address() as net.AddressInfo).port;
      assert.equal((await request(mainPort, '/')).body, 'main', 'the required listener serves meanwhile');
      await new Promise<void>((r) => blocker.close(() => r()));
      const end = Date.now() + 5000;
      while (set.problems().length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(set.problems(), []);
      assert.equal((await request(port, '/')).body, 'extra');
      assert.ok((set.states().find((s) => s.label === 'extra')?.attempts ?? 0) > 1);
    } finally {
      set.stopRetrying();
      for (const s of set.servers()) s.close();
      blocker.close();
    }
  });

  test('a required listener that cannot be bound fails', async () => {
    const set = new ListenerSet();
    await assert.rejects(set.add(net.createServer(), { label: 'main', address: '192.0.2.1', port: 0, required: true }), /EADDRNOTAVAIL/);
  });
});

describe('a server with ipv6 = yes on a host without the IPv6 addresses', () => {
  test('serves IPv4, shows the IPv6 addresses, and says which listeners wait', async () => {
    await withVms({ mdserver: { ipv6: 'yes' }, dnsmasq: { net6_address: 'fd00:ec2::' } }, [VM1], async (srv, ip) => {
      assert.equal((await request(srv.port, '/latest/meta-data/local-ipv4', { from: ip })).body, ip);
      const host = ip.split('.').map(Number);
      const expected = `fd00:ec2::${(((host[2] as number) << 8) | (host[3] as number)).toString(16)}`;
      assert.equal((await request(srv.port, '/latest/meta-data/ipv6', { from: ip })).body, expected);
      const h = JSON.parse((await request(srv.port, '/health')).body) as { status: string; problems: string[]; ipv6: { prefix: string } };
      assert.equal(h.status, 'degraded');
      assert.match(h.problems.join('\n'), /metadata IPv6 listener fd00:ec2::254 port \d+ is not bound \(retrying\)/);
      assert.match(h.problems.join('\n'), /metadata link-local listener fe80::a9fe:a9fe%lo port \d+ is not bound/);
      assert.equal(h.ipv6.prefix, 'fd00:ec2::/64');
      const config = path.join(srv.dir, 'mdserver.conf');
      const list = await cli(['instances', 'list', '--config', config]);
      assert.match(list.stdout, /^NAME\s+IPV4\s+IPV6\s+MAC/m, list.stderr);
      assert.match(list.stdout, new RegExp(`^test1\\s+${ip.replace(/\./g, '\\.')}\\s+${expected}\\s`, 'm'));
      const shown = JSON.parse((await cli(['instances', 'show', 'test1', '--json', '--config', config])).stdout) as { ipv6: string };
      assert.equal(shown.ipv6, expected);
      const status = await cli(['status', '--config', config]);
      assert.equal(status.status, 1, 'degraded while the IPv6 listeners wait');
      assert.match(status.stdout, /^metadata:\s+\[fd00:ec2::254\]:\d+ NOT BOUND \(retrying\)/m);
      const reply = await request(srv.port, '/instance-upload', { method: 'POST', body: domainXml(VM1) });
      assert.match(reply.body, new RegExp(`^updated test1 mac=52:54:00:3a:cf:41 ipv4=${ip.replace(/\./g, '\\.')} ipv6=${expected}\\n`));
    });
  });

  test('an IPv4-only configuration replies as before', async () => {
    await withVms({}, [VM1], async (srv, ip) => {
      assert.equal((await request(srv.port, '/latest/meta-data/ipv6', { from: ip })).status, 404);
      const reply = await request(srv.port, '/instance-upload', { method: 'POST', body: domainXml(VM1) });
      assert.doesNotMatch(reply.body, /ipv6/);
      const h = JSON.parse((await request(srv.port, '/health')).body) as { listeners: unknown[]; ipv6: unknown };
      assert.equal(h.ipv6, null);
      assert.equal(h.listeners.length, 1);
    });
  });
});
