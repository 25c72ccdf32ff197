// The host files of a large cluster are rewritten by a path built for speed (each entry checked
// once, names grouped only where they repeat, IPv6 text without BigInt, lines joined once). These
// tests hold it to the plain rule, written out here the simple way: the same bytes for thousands
// of generated hosts with shared names, unfit records and service names, under several
// configurations; and the attacks that rule keeps out, in the files mdserver writes.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig, type Config } from '../src/config/index.js';
import { DnsmasqFiles } from '../src/dnsmasq/files.js';
import { dnsmasqPaths, renderServiceNames, type HostEntry } from '../src/dnsmasq/render.js';
import { uniqueHostNames } from '../src/instances/hostNames.js';
import { silenceLogging } from '../src/log.js';
import { parseIPv4, net4 } from '../src/net/ip.js';
import { formatIPv6, ipv6ForIPv4, parseIPv6, withIPv6, type Plan6 } from '../src/net/ip6.js';
import type { HostRecord } from '../src/store/store.js';
import { iniText, tempDir } from './helpers.js';

silenceLogging();

function configFor(dir: string, dnsmasq: Record<string, string>, mdserver: Record<string, string> = {}): Config {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'mdserver.conf');
  fs.writeFileSync(file, iniText({
    mdserver: { listen_address: '169.254.169.254', ...mdserver },
    dnsmasq: { base_dir: path.join(dir, 'base'), run_dir: path.join(dir, 'run'), net_address: '10.122.0.0', net_prefix: '16', gateway: '10.122.0.1', ...dnsmasq },
  }));
  return loadConfig(file).config;
}

// ---- The rule, the simple way (what the files held before the fast path) ----

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const fit = (h: HostEntry): boolean => MAC.test(h.mac) && LABEL.test(h.hostName) && (h.ipv4 === null || net.isIPv4(h.ipv4)) && (h.ipv6 === null || net.isIPv6(h.ipv6));

function plainUnique(records: readonly HostRecord[]): HostEntry[] {
  const groups = new Map<string, HostRecord[]>();
  for (const r of records) groups.set(r.hostName.toLowerCase(), [...(groups.get(r.hostName.toLowerCase()) ?? []), r]);
  const taken = new Set(groups.keys());
  const listedAs = new Map<HostRecord, string>();
  for (const g of groups.values()) {
    const sorted = [...g].sort((a, b) => a.firstSeen - b.firstSeen || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const r of sorted.slice(1)) {
      const tag = r.uuid.replace(/-/g, '').slice(0, 8);
      for (let n = 1; ; n++) {
        const suffix = n === 1 ? `-${tag}` : `-${tag}-${n}`;
        const name = `${r.hostName.slice(0, 63 - suffix.length).replace(/-+$/, '')}${suffix}`;
        if (taken.has(name.toLowerCase())) continue;
        taken.add(name.toLowerCase());
        listedAs.set(r, name);
        break;
      }
    }
  }
  return records.map((r) => ({ hostName: listedAs.get(r) ?? r.hostName, mac: r.mac, ipv4: r.ipv4, ipv6: r.ipv6 }));
}

function plainDhcp(hosts: readonly HostEntry[], leaseLen: number, services: readonly string[]): string {
  let out = '';
  for (const h of hosts) {
    if (!fit(h) || (!h.ipv4 && !h.ipv6)) continue;
    const fields = [h.mac, 'id:*'];
    if (h.ipv4) fields.push(h.ipv4);
    if (h.ipv6) fields.push(`[${h.ipv6}]`);
    if (!services.some((s) => s.toLowerCase() === h.hostName.toLowerCase())) fields.push(h.hostName);
    out += `${fields.join(',')},${leaseLen}\n`;
  }
  return out;
}

function plainDns(cfg: Config, hosts: readonly HostEntry[]): string {
  const { prefix, domain, entryOrder, serviceNames } = cfg.dnsmasq;
  let out = renderServiceNames(cfg);
  for (const h of hosts) {
    if (!fit(h)) continue;
    const prefixed = prefix ? prefix + h.hostName : h.hostName;
    const names: string[] = [];
    for (const kind of entryOrder) {
      if (kind === 'base') names.push(h.hostName);
      else if (kind === 'prefix' && prefix) names.push(prefixed);
      else if (kind === 'domain' && domain) names.push(`${prefixed}.${domain}`);
    }
    const kept = names.filter((n) => !serviceNames.some((s) => s.toLowerCase() === (n.split('.')[0] as string).toLowerCase()));
    if (kept.length === 0) continue;
    if (h.ipv4) out += `${h.ipv4} ${kept.join(' ')}\n`;
    if (h.ipv6) out += `${h.ipv6} ${kept.join(' ')}\n`;
  }
  return out;
}

// ---- Records as a database from before the rules, or an md_server import, may hold them ----

function records(n: number): HostRecord[] {
  const out: HostRecord[] = [];
  const hex = (i: number, w: number): string => i.toString(16).padStart(w, '0');
  const tag = (i: number): string => hex((i * 2654435761) % 0xffffffff, 8);
  for (let i = 0; i < n; i++) {
    let hostName = `vm-${i}`;
    let mac = `52:54:00:${hex((i >> 16) & 255, 2)}:${hex((i >> 8) & 255, 2)}:${hex(i & 255, 2)}`;
    let ipv4: string | null = `10.122.${(i >> 8) & 255}.${i & 255}`;
    const ipv6: string | null = i % 13 === 0 ? `fd00:122::${hex(i, 1)}` : null;
    if (i % 97 === 1) hostName = `VM-${i - 1}`; // the same name as the one before, in other case
    if (i % 211 === 2) hostName = 'shared'; // many share one name
    if (i % 389 === 3) hostName = `shared-${tag(i - ((((i - 2) % 211) + 211) % 211))}`; // the replacement name another needs
    if (i % 401 === 4) mac = `52:54:00:00:00:01\ndhcp-script=/tmp/evil${i}`;
    if (i % 409 === 5) hostName = `bad name${i}`;
    if (i % 419 === 6) hostName = `ok${i}\n10.122.0.8 victim`;
    if (i % 421 === 7) ipv4 = `10.122.0.${i % 250},set:evil`; // an md_server import
    if (i % 431 === 8) ipv4 = '010.122.0.5';
    if (i % 433 === 9) ipv4 = null;
    if (i % 439 === 10) ipv4 = `192.168.${i % 250}.7`; // outside the network: no derived IPv6
    if (i % 443 === 11) hostName = ['metadata', 'Data-Server', 'INSTANCE-DATA', 'data', 'Meta'][i % 5] as string;
    if (i === 12) ipv4 = '10.122.2.84'; // derives listen_address6 fd00:ec2::254: no IPv6 for it
    // Two long names that differ only at their end, each shared, the second one repeating first:
    // cut short for the suffix, their replacements compete for the same names.
    const long = ({ 20: 'a', 21: 'b', 22: 'b', 23: 'a', 24: 'a', 25: 'b' } as Record<number, string>)[i];
    if (long) hostName = `${'y'.repeat(62)}${long}`;
    const uuid = `${long ? 'feedbeef' : tag(i)}-0000-4000-8000-${hex(i, 12)}`;
    out.push({ name: `${hostName}#${i}`, hostName, uuid, mac, ipv4, ipv6, firstSeen: (i * 7919) % 1000, host: i % 2 ? 'host-a' : 'host-b' });
  }
  return out;
}

describe('the host files of a large cluster', () => {
  const dir = tempDir();
  const cases: [string, Record<string, string>, Record<string, string>][] = [
    ['md_server defaults', {}, {}],
    ['IPv6, domain, prefix, entry_order prefix,domain,base', { use_dns: 'yes', domain: 'vm.example', prefix: 'kvm-', entry_order: 'prefix,domain,base', lease_len: '600' }, { ipv6: 'yes' }],
    ['a prefix that makes a service name', { domain: 'vm.example', prefix: 'Meta', entry_order: 'base,prefix,domain' }, {}],
    ['no service names', { service_names: '', domain: 'vm.example', entry_order: 'domain,base' }, { ipv6: 'yes' }],
  ];
  const recs = records(6000);

  for (const [what, dnsmasq, mdserver] of cases) {
    test(`6,000 hosts with shared names, unfit records and service names: the same bytes as the plain rule (${what})`, () => {
      const cfg = configFor(path.join(dir, what.replace(/\W+/g, '-')), dnsmasq, mdserver);
      const plan = cfg.dnsmasq.plan6;
      const { entries } = uniqueHostNames(recs, plan ? (r) => ipv6ForIPv4(plan, r.ipv4) : undefined);
      const plain = plainUnique(recs.map((r) => withIPv6(r, plan)));
      assert.deepEqual(entries, plain);
      const files = new DnsmasqFiles(() => cfg, () => entries);
      assert.equal(files.flush(), true);
      const p = dnsmasqPaths(cfg);
      const dhcp = fs.readFileSync(p.dhcpHosts, 'utf8');
      const dns = fs.readFileSync(p.dnsHosts, 'utf8');
      assert.equal(dhcp, plainDhcp(plain, cfg.dnsmasq.leaseLen, cfg.dnsmasq.serviceNames));
      assert.equal(dns, plainDns(cfg, plain));
      // Not an empty comparison: most hosts are there, the unfit ones are not.
      assert.ok(dhcp.split('\n').length > 5800, `${dhcp.split('\n').length} DHCP lines`);
      assert.doesNotMatch(dhcp + dns, /evil|victim|bad name|010\.122/);
    });
  }

  test('the next rewrites, after changes to a few hosts and after a reload, are the plain rule\'s too', () => {
    const d = path.join(dir, 'changes');
    let cfg = configFor(d, { domain: 'vm.example', prefix: 'kvm-', entry_order: 'base,prefix,domain' });
    let hosts = plainUnique(recs);
    const files = new DnsmasqFiles(() => cfg, () => hosts);
    const p = dnsmasqPaths(cfg);
    const written = (): string => fs.readFileSync(p.dhcpHosts, 'utf8') + fs.readFileSync(p.dnsHosts, 'utf8');
    const plain = (): string => plainDhcp(hosts, cfg.dnsmasq.leaseLen, cfg.dnsmasq.serviceNames) + plainDns(cfg, hosts);
    assert.equal(files.flush(), true);
    assert.equal(written(), plain());
    // The same MACs with a new name, a new address, a MAC-safe entry turned unfit and back.
    hosts = hosts.map((h, i) => {
      if (i === 100) return { ...h, hostName: 'renamed' };
      if (i === 101) return { ...h, ipv4: '10.122.250.1' };
      if (i === 102) return { ...h, hostName: 'metadata' };
      if (i === 103) return { ...h, ipv4: '10.122.0.1\nconf-file=/tmp/evil' };
      return h;
    }).filter((_, i) => i !== 104);
    assert.equal(files.flush(), true);
    assert.equal(written(), plain());
    assert.match(written(), /^10\.122\.0\.100 renamed kvm-renamed kvm-renamed\.vm\.example$/m);
    assert.doesNotMatch(written(), /evil/);
    hosts = hosts.map((h, i) => (i === 103 ? { ...h, ipv4: '10.122.250.2' } : h));
    assert.equal(files.flush(), true);
    assert.equal(written(), plain());
    // A reload: another lease time, service names, names in DNS.
    cfg = configFor(d, { domain: 'vm.example', prefix: 'kvm-', entry_order: 'domain', lease_len: '900', service_names: 'metadata renamed' });
    assert.equal(files.flush(), true);
    assert.equal(written(), plain());
    assert.doesNotMatch(written(), /,renamed,/, 'renamed is a service name now');
    assert.match(written(), /^10\.122\.0\.100 kvm-renamed\.vm\.example$/m);
  });

  test('the derived IPv6 addresses are the BigInt rule\'s, in prefixes whose zeros fall anywhere', () => {
    const nets: [string, number][] = [['fd00:ec2::', 64], ['2001:db8:0:1::', 64], ['fd00:0:0:0:1::', 80], ['fd12:3456:789a::', 48], ['2001:db8:1:2:3:4::', 96], ['::', 96]];
    for (const [text, prefix] of nets) {
      const network = parseIPv6(text) as bigint;
      const plan: Plan6 = { network, prefix, net4: net4(parseIPv4('10.0.0.0') as number, 8), reserved: [network | 1n, network | 0x10002n] };
      for (const host of [1, 2, 0xffff, 0x10000, 0x10001, 0x10002, 0xabcdef, 0xff0000, 0xffffff, 0x123400, 0x120034]) {
        const ipv4 = `10.${(host >> 16) & 255}.${(host >> 8) & 255}.${host & 255}`;
        const n = network | BigInt(host);
        const expected = plan.reserved.includes(n) ? null : formatIPv6(n);
        assert.equal(ipv6ForIPv4(plan, ipv4), expected, `${ipv4} in ${text}/${prefix}`);
      }
      assert.equal(ipv6ForIPv4(plan, '11.0.0.1'), null);
    }
  });

  test('a tenant naming a domain "metadata" or "Data-Server" gets no name in either file; a host name with a line break reaches neither', () => {
    const cfg = configFor(path.join(dir, 'attack'), { use_dns: 'yes', domain: 'vm.example', entry_order: 'base,domain' }, { ipv6: 'yes' });
    const tenant = (hostName: string, i: number): HostRecord => ({
      name: hostName, hostName, uuid: `aaaaaaaa-0000-4000-8000-00000000000${i}`, mac: `52:54:00:00:00:a${i}`, ipv4: `10.122.0.${100 + i}`, ipv6: null, firstSeen: i, host: '',
    });
    const hosts = [tenant('metadata', 1), tenant('Data-Server', 2), tenant('web\nmetadata', 3), tenant('web1', 4)];
    const plan = cfg.dnsmasq.plan6 as Plan6;
    const files = new DnsmasqFiles(() => cfg, () => uniqueHostNames(hosts, (r) => ipv6ForIPv4(plan, r.ipv4)).entries);
    assert.equal(files.flush(), true);
    const p = dnsmasqPaths(cfg);
    const dhcp = fs.readFileSync(p.dhcpHosts, 'utf8');
    const dns = fs.readFileSync(p.dnsHosts, 'utf8');
    // The squatters keep their leases, without a name; the one with a line break is left out.
    assert.equal(dhcp, [
      '52:54:00:00:00:a1,id:*,10.122.0.101,[fd00:ec2::65],86400',
      '52:54:00:00:00:a2,id:*,10.122.0.102,[fd00:ec2::66],86400',
      '52:54:00:00:00:a4,id:*,10.122.0.104,[fd00:ec2::68],web1,86400',
      '',
    ].join('\n'));
    // The service names answer with the metadata addresses only.
    for (const line of dns.split('\n').filter((l) => /(^| )(metadata|data-server)( |\.|$)/i.test(l))) {
      assert.match(line, /^(169\.254\.169\.254|fd00:ec2::254) /, line);
    }
    assert.doesNotMatch(dns, /10\.122\.0\.10[123]|fd00:ec2::6[567]/);
    assert.match(dns, /^10\.122\.0\.104 web1 web1\.vm\.example$/m);
  });
});
