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
  if (d.domain) {
    // Names in the local domain are answered from mdserver's files only: one that does not exist
    // is NXDOMAIN, never forwarded to a resolver that might answer every name (cloud-init drops a
    // metadata URL whose host name resolves like a name that cannot exist).
    lines.push(`domain=${d.domain}`, `local=/${d.domain}/`);
  }
  lines.push(...ipv6Conf(cfg));
  for (const line of lines) {
    // The configuration validates each of these values; this holds even if it stopped doing so.
    if (/[\n\r]/.test(line)) throw new Error(`refusing a dnsmasq configuration line with a line break: ${JSON.stringify(line)}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * With `ipv6 = yes`: router advertisements with the managed flag (so clients ask DHCPv6, and
 * the prefix is on-link: listen_address6 in it is reached without a router), and DHCPv6 handing
 * out only the fixed addresses of the hosts file, as DHCPv4 does.
 */
function ipv6Conf(cfg: Config): string[] {
  if (!cfg.mdserver.ipv6) return [];
  const d = cfg.dnsmasq;
  return ['enable-ra', `dhcp-range=${d.net6Address},static,${d.net6Prefix},${d.leaseLen}`];
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

declare const checked: unique symbol;

/**
 * A host entry that passed isSafeHost. The host files are rendered from these only, so an entry
 * nobody checked cannot reach a line; checkHost is the one place that makes them.
 */
export type SafeHostEntry = HostEntry & { readonly [checked]: true };

/** The entry as a checked one, or null when it fails isSafeHost. */
export function checkHost(h: HostEntry): SafeHostEntry | null {
  return isSafeHost(h) ? (h as SafeHostEntry) : null;
}

/** The entries that can go into dnsmasq's host files, and the ones left out; each checked once. */
export function checkHosts(hosts: readonly HostEntry[]): { safe: SafeHostEntry[]; unfit: HostEntry[] } {
  const safe: SafeHostEntry[] = [];
  const unfit: HostEntry[] = [];
  for (const h of hosts) {
    const c = checkHost(h);
    if (c) safe.push(c);
    else unfit.push(h);
  }
  return { safe, unfit };
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
  // DHCPv6 and the router advertisements' RDNSS both take it from here.
  if (cfg.dnsmasq.useDns && cfg.mdserver.ipv6) lines.push(`option6:dns-server,[${address(cfg.dnsmasq.gateway6, '[dnsmasq] gateway6')}]`);
  // DHCPv4 gives the domain by itself; DHCPv6 only when told, and an IPv6-only VM's resolver then
  // finds metadata.<domain> from the bare name too.
  if (cfg.mdserver.ipv6 && cfg.dnsmasq.domain) lines.push(`option6:domain-search,${cfg.dnsmasq.domain}`);
  return lines.join('\n') + '\n';
}

/** The service names, lower-cased: no instance may take one (ignoring case). */
function serviceNameSet(names: readonly string[]): ReadonlySet<string> {
  return new Set(names.map((s) => s.toLowerCase()));
}

/**
 * One `<mac>,id:*,<ipv4>,[<ipv6>],<name>,<lease>` line per host (`id:*` ignores client ids;
 * DHCPv6 finds the client's MAC through the neighbour table). Only checked entries come here (see
 * checkHosts); a host named like a service name gets no name from DHCP, so that a tenant who calls
 * a domain `metadata` cannot take the name VMs look mdserver up by.
 */
export function renderDhcpHosts(hosts: readonly SafeHostEntry[], leaseLen: number, serviceNames: readonly string[] = []): string {
  return hosts.map(dhcpLiner(leaseLen, serviceNames)).join('');
}

/** One checked host's line in the DHCP hosts file (see renderDhcpHosts); empty without an address. */
export function dhcpLiner(leaseLen: number, serviceNames: readonly string[]): (h: SafeHostEntry) => string {
  const taken = serviceNameSet(serviceNames);
  const tail = `,${leaseLen}\n`;
  return (h) => {
    if (!h.ipv4 && !h.ipv6) return '';
    let line = `${h.mac},id:*`;
    if (h.ipv4) line += `,${h.ipv4}`;
    if (h.ipv6) line += `,[${h.ipv6}]`;
    if (taken.size === 0 || !taken.has(h.hostName.toLowerCase())) line += `,${h.hostName}`;
    return line + tail;
  };
}

/**
 * Service names that get no AAAA record. cloud-init's CloudStack datasource (22.4 and 25.1 alike)
 * takes the first address `getaddrinfo("data-server")` returns and pastes it into
 * `http://<address>/` and wget's `<address>:8080` without brackets; a dual-stack guest's resolver
 * puts the IPv6 address first, and the datasource then never reaches any server. CloudStack's
 * own virtual router names only its IPv4 address data-server.
 */
const IPV4_ONLY_NAMES = new Set(['data-server']);

/**
 * The service names' lines: A the IPv4 listen address (169.254.169.254), AAAA listen_address6
 * with `ipv6 = yes` (except IPV4_ONLY_NAMES), each name also under `domain` (expand-hosts would
 * add it; written out so the file says what is served).
 */
export function renderServiceNames(cfg: Config): string {
  const d = cfg.dnsmasq;
  const withDomain = (ns: readonly string[]): string[] => ns.flatMap((n) => (d.domain ? [n, `${n}.${d.domain}`] : [n]));
  const names = withDomain(d.serviceNames);
  if (names.length === 0) return '';
  let out = '';
  if (net.isIPv4(cfg.mdserver.listenAddress)) out += `${cfg.mdserver.listenAddress} ${names.join(' ')}\n`;
  const names6 = withDomain(d.serviceNames.filter((n) => !IPV4_ONLY_NAMES.has(n.toLowerCase())));
  if (cfg.mdserver.ipv6 && names6.length > 0) out += `${cfg.mdserver.listenAddress6} ${names6.join(' ')}\n`;
  return out;
}

/**
 * The names one checked host gets in the DNS hosts file, space-separated, in entry_order: base,
 * <prefix><base>, <prefix><base>.<domain>, less those whose first label is a service name (see
 * renderDhcpHosts); empty for none. Made once per rewrite: all but the host name is configuration.
 */
function dnsNamer(cfg: Config): (hostName: string) => string {
  const { prefix, domain, entryOrder } = cfg.dnsmasq;
  const services = serviceNameSet(cfg.dnsmasq.serviceNames);
  const kinds = entryOrder.filter((k) => k === 'base' || (k === 'prefix' && prefix) || (k === 'domain' && domain));
  const dotDomain = `.${domain ?? ''}`;
  const isService = (name: string): boolean => {
    const dot = name.indexOf('.');
    return services.has((dot < 0 ? name : name.slice(0, dot)).toLowerCase());
  };
  return (hostName) => {
    const prefixed = prefix ? prefix + hostName : hostName;
    // Every name but the base one starts with the prefixed name, so its first label decides.
    const baseOut = services.size > 0 && isService(hostName);
    const prefixedOut = services.size > 0 && isService(prefixed);
    let names = '';
    for (const kind of kinds) {
      if (kind === 'base' ? baseOut : prefixedOut) continue;
      const name = kind === 'base' ? hostName : kind === 'prefix' ? prefixed : prefixed + dotDomain;
      names = names === '' ? name : `${names} ${name}`;
    }
    return names;
  };
}

/**
 * The service names, then `<address> <names...>` lines for the checked entries (see checkHosts),
 * leaving out instance names that are service names (see renderDhcpHosts).
 */
export function renderDnsHosts(cfg: Config, hosts: readonly SafeHostEntry[]): string {
  return renderServiceNames(cfg) + hosts.map(dnsLiner(cfg)).join('');
}

/** One checked host's lines in the DNS hosts file (see renderDnsHosts): none, one or two. */
export function dnsLiner(cfg: Config): (h: SafeHostEntry) => string {
  const namesOf = dnsNamer(cfg);
  return (h) => {
    const names = namesOf(h.hostName);
    if (names === '') return '';
    const v4 = h.ipv4 ? `${h.ipv4} ${names}\n` : '';
    return h.ipv6 ? `${v4}${h.ipv6} ${names}\n` : v4;
  };
}
