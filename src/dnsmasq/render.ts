// Pure: the text of the files dnsmasq reads for the metadata network.
//
// dnsmasq starts as root, so its main configuration can run code as root (dhcp-script=, with
// dhcp-scriptuser unset) and must never be a file the mdserver account can write. It is rendered
// here but written only by root, at each start of mdserver-dnsmasq.service (`mdserver
// dnsmasq-conf`), into a root-owned directory. At run time mdserver writes data files only: the
// options file (every line a dhcp-option), the DHCP hosts file (every line a dhcp-host) and the
// DNS hosts directory (addresses and names), which dnsmasq never reads as options. Every value
// that goes into any of them is checked or quoted here, so no value can start a line of its own.

import net from 'node:net';
import type { Config } from '../config/index.js';
import { netmask } from '../net/ip.js';
import type { HostEntry } from '../store/store.js';

// The host files are written from the store's records; declared there, offered here too.
export type { HostEntry };

export interface DnsmasqPaths {
  /** The options file mdserver writes (dhcp-optsfile). */
  opts: string;
  dhcpHosts: string;
  dnsHostsDir: string;
  dnsHosts: string;
  /** Where mdserver before this version wrote dnsmasq's main configuration; removed at start-up. */
  legacyConf: string;
  /** dnsmasq's pid file, in its own runtime directory `<run_dir>-dnsmasq` (root's). */
  pidFile: string;
}

export function dnsmasqPaths(cfg: Config): DnsmasqPaths {
  const d = cfg.dnsmasq;
  const base = d.baseDir;
  // Beside run_dir, not inside it: dnsmasq writes its pid file as root, and without
  // CAP_DAC_OVERRIDE it cannot write into the mdserver account's directory (nor should it: that
  // account could swap the directory for a link). systemd creates it (RuntimeDirectory=).
  const runDir = `${d.runDir}-dnsmasq`;
  return {
    opts: `${base}/${d.netName}.opts`,
    dhcpHosts: `${base}/dhcp/${d.netName}.dhcp-hosts`,
    dnsHostsDir: `${base}/dns`,
    dnsHosts: `${base}/dns/${d.netName}.dns-hosts`,
    legacyConf: `${base}/${d.netName}.conf`,
    pidFile: `${runDir}/${d.netName}.pid`,
  };
}

const HEADER = `## WARNING: THIS IS AN AUTO-GENERATED FILE. MANUAL CHANGES WILL BE OVERWRITTEN.`;

/**
 * A path as one dnsmasq configuration value: quoted, so that `,` `#` `:` and spaces keep no special
 * meaning, and with the characters dnsmasq unescapes inside quotes escaped, so that a newline in a
 * configured path can never end the line and start an option of its own.
 */
export function quotePath(p: string): string {
  const escaped = p.replace(/[\\"\n\r\t\x1b\b]/g, (c) => {
    switch (c) {
      case '\n': return '\\n';
      case '\r': return '\\r';
      case '\t': return '\\t';
      case '\x1b': return '\\e';
      case '\b': return '\\b';
      default: return `\\${c}`;
    }
  });
  return `"${escaped}"`;
}

/** The address VMs are told to use for DNS: dnsmasq's own listen address, else the gateway. */
export function dnsServer(cfg: Config): string {
  const l = cfg.dnsmasq.listenAddress;
  return l && net.isIPv4(l) ? l : cfg.dnsmasq.gateway;
}

/**
 * dnsmasq's main configuration. It names the data files mdserver writes and nothing that runs a
 * program: no dhcp-script, dhcp-luascript or dhcp-scriptuser, no conf-file or conf-dir.
 */
export function renderConf(cfg: Config): string {
  const d = cfg.dnsmasq;
  const p = dnsmasqPaths(cfg);
  const lines = [
    HEADER,
    '# Written by root (`mdserver dnsmasq-conf`, run by mdserver-dnsmasq.service as it starts) from',
    '# the [dnsmasq] section of mdserver\'s configuration. mdserver itself writes only the data files',
    '# named below, which dnsmasq reads as DHCP hosts, DHCP options and DNS hosts, never as options.',
    `user=${d.user}`,
    'leasefile-ro',
    'strict-order',
    'expand-hosts',
    `pid-file=${quotePath(p.pidFile)}`,
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
    `dhcp-hostsfile=${quotePath(p.dhcpHosts)}`,
    `dhcp-optsfile=${quotePath(p.opts)}`,
    `hostsdir=${quotePath(p.dnsHostsDir)}`,
  );
  if (d.domain) lines.push(`domain=${d.domain}`);
  for (const line of lines) {
    // The configuration validates each of these values; this holds even if it stopped doing so.
    if (/[\n\r]/.test(line)) throw new Error(`refusing a dnsmasq configuration line with a line break: ${JSON.stringify(line)}`);
  }
  return lines.join('\n') + '\n';
}

/** An address for a data file line: an IP address and nothing else. */
function address(value: string, what: string): string {
  if (!net.isIP(value)) throw new Error(`${what} ${JSON.stringify(value)} is not an IP address; not written to dnsmasq's options`);
  return value;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * Whether a host entry can go into dnsmasq's host files: a MAC, a one-label host name and IP
 * addresses, nothing that could end a line or add a field. Records come from the database, which
 * an imported md_server JSON file fills without mdserver's upload checks.
 */
export function isSafeHost(h: HostEntry): boolean {
  return MAC.test(h.mac) && HOST_NAME.test(h.hostName) &&
    (h.ipv4 === null || net.isIPv4(h.ipv4)) && (h.ipv6 === null || net.isIPv6(h.ipv6));
}

export function renderOpts(cfg: Config): string {
  const gw = address(cfg.dnsmasq.gateway, '[dnsmasq] gateway');
  const mds = address(cfg.mdserver.listenAddress, '[mdserver] listen_address');
  const lines = [HEADER, "# mdserver writes it from its configuration; every line is one DHCP option (dnsmasq's dhcp-optsfile)."];
  if (net.isIPv4(mds)) {
    // A host route to the metadata address via the gateway, plus the default route: option 121
    // replaces the router option for clients that support it, so both must be in it. 249 is the
    // same for old Windows clients.
    lines.push(`option:classless-static-route,${mds}/32,${gw},0.0.0.0/0,${gw}`);
    lines.push(`249,${mds}/32,${gw},0.0.0.0/0,${gw}`);
  }
  lines.push(`option:router,${gw}`);
  if (cfg.dnsmasq.useDns) lines.push(`option:dns-server,${address(dnsServer(cfg), 'the DNS server')}`);
  return lines.join('\n') + '\n';
}

/**
 * One `<mac>,id:*,<address>,<name>,<lease>` line per address; `id:*` ignores client ids. Entries
 * that fail isSafeHost are left out.
 */
export function renderDhcpHosts(hosts: readonly HostEntry[], leaseLen: number): string {
  let out = '';
  for (const h of hosts) {
    if (!isSafeHost(h)) continue;
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

/**
 * The names of the metadata service itself: with `[cloudstack] enabled`, `data-server` (the name
 * cloud-init's CloudStack datasource looks up first, relative so the search domain applies).
 */
export function serviceNames(cfg: Config): string[] {
  return cfg.cloudstack.enabled ? ['data-server'] : [];
}

/**
 * `<address> <names...>` lines: the service's names first, then each instance's. Entries that fail
 * isSafeHost are left out, and so are instance names that are a service name (ignoring case): a
 * domain called `data-server` must not become the server other VMs read their metadata from.
 */
export function renderDnsHosts(cfg: Config, hosts: readonly HostEntry[]): string {
  const service = serviceNames(cfg);
  let out = service.length > 0 ? `${cfg.mdserver.listenAddress} ${service.join(' ')}\n` : '';
  const taken = new Set(service);
  for (const h of hosts) {
    if (!isSafeHost(h)) continue;
    const names = hostNames(cfg, h.hostName).filter((n) => !taken.has(n.toLowerCase()));
    if (names.length === 0) continue;
    if (h.ipv4) out += `${h.ipv4} ${names.join(' ')}\n`;
    if (h.ipv6) out += `${h.ipv6} ${names.join(' ')}\n`;
  }
  return out;
}
