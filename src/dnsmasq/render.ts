// Pure: the text of the four files dnsmasq reads for the metadata network.

import net from 'node:net';
import type { Config } from '../config/index.js';
import { netmask } from '../net/ip.js';
import type { HostEntry } from '../store/store.js';

// The host files are written from the store's records; declared there, offered here too.
export type { HostEntry };

export interface DnsmasqPaths {
  conf: string;
  opts: string;
  dhcpHosts: string;
  dnsHostsDir: string;
  dnsHosts: string;
  pidFile: string;
}

export function dnsmasqPaths(cfg: Config): DnsmasqPaths {
  const d = cfg.dnsmasq;
  const base = d.baseDir;
  return {
    conf: `${base}/${d.netName}.conf`,
    opts: `${base}/${d.netName}.opts`,
    dhcpHosts: `${base}/dhcp/${d.netName}.dhcp-hosts`,
    dnsHostsDir: `${base}/dns`,
    dnsHosts: `${base}/dns/${d.netName}.dns-hosts`,
    pidFile: `${d.runDir}/${d.netName}.pid`,
  };
}

const HEADER = `## WARNING: THIS IS AN AUTO-GENERATED FILE. MANUAL CHANGES WILL BE OVERWRITTEN.
# mdserver writes it from the [dnsmasq] section of its configuration.
`;

/** The address VMs are told to use for DNS: dnsmasq's own listen address, else the gateway. */
export function dnsServer(cfg: Config): string {
  const l = cfg.dnsmasq.listenAddress;
  return l && net.isIPv4(l) ? l : cfg.dnsmasq.gateway;
}

export function renderConf(cfg: Config): string {
  const d = cfg.dnsmasq;
  const p = dnsmasqPaths(cfg);
  const lines = [
    HEADER.trimEnd(),
    `user=${d.user}`,
    'leasefile-ro',
    'strict-order',
    'expand-hosts',
    `pid-file=${p.pidFile}`,
  ];
  // Listening on loopback is only wanted when testing against lo itself.
  const onLo = d.listenAddress !== null && d.listenAddress.startsWith('127.') && d.interface === 'lo';
  lines.push(onLo ? "# lo is not excluded: the listen address is on it" : 'except-interface=lo');
  lines.push(d.listenAddress ? `listen-address=${d.listenAddress}` : '# no listen address defined');
  lines.push(
    `interface=${d.interface}`,
    'bind-dynamic',
    // Static mode: only hosts listed in the dhcp-hosts file get an address, for lease_len seconds.
    `dhcp-range=${d.netAddress},static,${netmask(d.netPrefix)},${d.leaseLen}`,
    'dhcp-no-override',
    'dhcp-authoritative',
    `dhcp-hostsfile=${p.dhcpHosts}`,
    `dhcp-optsfile=${p.opts}`,
    `hostsdir=${p.dnsHostsDir}`,
  );
  if (d.domain) lines.push(`domain=${d.domain}`);
  return lines.join('\n') + '\n';
}

export function renderOpts(cfg: Config): string {
  const gw = cfg.dnsmasq.gateway;
  const mds = cfg.mdserver.listenAddress;
  const lines = [HEADER.trimEnd()];
  if (net.isIPv4(mds)) {
    // A host route to the metadata address via the gateway, plus the default route: option 121
    // replaces the router option for clients that support it, so both must be in it. 249 is the
    // same for old Windows clients.
    lines.push(`option:classless-static-route,${mds}/32,${gw},0.0.0.0/0,${gw}`);
    lines.push(`249,${mds}/32,${gw},0.0.0.0/0,${gw}`);
  }
  lines.push(`option:router,${gw}`);
  if (cfg.dnsmasq.useDns) lines.push(`option:dns-server,${dnsServer(cfg)}`);
  return lines.join('\n') + '\n';
}

/** One `<mac>,id:*,<address>,<name>,<lease>` line per address; `id:*` ignores client ids. */
export function renderDhcpHosts(hosts: readonly HostEntry[], leaseLen: number): string {
  let out = '';
  for (const h of hosts) {
    if (h.ipv4) out += `${h.mac},id:*,${h.ipv4},${h.hostName},${leaseLen}\n`;
    if (h.ipv6) out += `${h.mac},id:*,[${h.ipv6}],${h.hostName},${leaseLen}\n`;
  }
  return out;
}

/** The names for one host, in entry_order: base, <prefix><base>, <prefix><base>.<domain>. */
export function hostNames(cfg: Config, hostName: string): string[] {
  const { prefix, domain, entryOrder } = cfg.dnsmasq;
  const prefixed = prefix ? prefix + hostName : hostName;
  const names: string[] = [];
  for (const kind of entryOrder) {
    if (kind === 'base') names.push(hostName);
    else if (kind === 'prefix' && prefix) names.push(prefixed);
    else if (kind === 'domain' && domain) names.push(`${prefixed}.${domain}`);
  }
  return names;
}

export function renderDnsHosts(cfg: Config, hosts: readonly HostEntry[]): string {
  let out = '';
  for (const h of hosts) {
    const names = hostNames(cfg, h.hostName);
    if (names.length === 0) continue;
    if (h.ipv4) out += `${h.ipv4} ${names.join(' ')}\n`;
    if (h.ipv6) out += `${h.ipv6} ${names.join(' ')}\n`;
  }
  return out;
}
