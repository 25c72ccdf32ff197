// Every setting mdserver reads from its ini files, declared once: its section and key, its
// default (md_server's, key for key, plus the keys mdserver adds), the parser that validates it,
// whether a change needs a restart, and what it is for. The defaults, the validation, the
// `--check-config` dump, the typed `Config` and reload's restart list all come from this table.

import os from 'node:os';
import path from 'node:path';
import { isPrefixName } from '../names.js';
import { NWFILTER_NAME } from '../ids.js';
import { VERSION } from '../version.js';
import { fileText, jsonFile, tokenFile } from './fileParsers.js';
import { STORE_SETTINGS } from './storeSettings.js';
import { INSTANCE_VALUE_RULES, regionOf, type InstanceValueName } from './instanceValues.js';
import {
  adminSocket, bool, choice, filePath, int, ip, ipv4, ipv6, level, list, matching, nameOrNo, optional, optionalIp,
  optionalPath, text, type Parser,
} from './parsers.js';

/** The systemd units that must be restarted for a change to take effect (`both`: each of them). */
export type Unit = 'mdserver' | 'mdserver-dnsmasq' | 'both';

export interface Setting<T> {
  /** The key's name in the ini file. */
  readonly key: string;
  /** As it would be written in the file; a function when it depends on the host or the build. */
  readonly default: string | (() => string);
  readonly parse: Parser<T>;
  /** The unit to restart after a change; unset when a reload applies the change. */
  readonly restart?: Unit;
  /** Never shown by `--check-config`. */
  readonly secret?: boolean;
  /** One line on what the setting is for. */
  readonly doc: string;
}

export interface SettingsSection {
  /** The section's name in the ini file. */
  readonly section: string;
  /** Keyed by the property name the value has in `Config`. */
  readonly keys: Readonly<Record<string, Setting<unknown>>>;
}

export type EntryKind = 'base' | 'prefix' | 'domain';
export type TokenMode = 'optional' | 'required';
/** What is done about a VM whose metadata interface carries no trusted nwfilter. */
export type FilterPolicy = 'no' | 'warn' | 'yes';
/** What the OpenStack and NoCloud network documents tell a VM: its allocated address, or DHCP. */
export type NetworkMode = 'static' | 'dhcp';

export const DEFAULT_EC2_VERSIONS = '2009-04-04,2016-09-02,2018-09-24,2021-03-23,latest';
/** The versions cloud-init's EC2 datasource can use (22.4 and later), newest first. */
const CLOUD_INIT_VERSIONS = ['2021-03-23', '2018-09-24', '2016-09-02', '2009-04-04'];

const ec2Versions: Parser<readonly string[]> = (s, ctx) => {
  const versions = list(',', false)(s, ctx);
  if (versions.length === 0) ctx.fail('expected at least one version');
  for (const v of versions) if (!/^[A-Za-z0-9._-]+$/.test(v)) ctx.fail(`"${v}" is not a version name`);
  if (versions.length === 0) return versions;
  // cloud-init asks for the first of 2021-03-23, 2018-09-24 and 2016-09-02 that answers, and
  // otherwise uses 2009-04-04 without asking: with none of the four it finds no metadata at all.
  if (!CLOUD_INIT_VERSIONS.some((v) => versions.includes(v))) {
    ctx.warn(`lists none of ${CLOUD_INIT_VERSIONS.join(', ')}: cloud-init's EC2 datasource will find no metadata`);
  }
  if (!versions.includes('latest')) {
    ctx.warn('lacks latest: most tools other than cloud-init (ec2-metadata, AWS SDKs) read /latest/');
  }
  return versions;
};

const entryOrder: Parser<readonly EntryKind[]> = (s, ctx) => {
  const out: EntryKind[] = [];
  for (const item of list(',', false)(s.toLowerCase(), ctx)) {
    if (item.startsWith('base')) out.push('base');
    else if (item.startsWith('prefix')) out.push('prefix');
    else if (item === 'domain' || item === 'fqdn') out.push('domain');
    else ctx.fail(`unknown entry "${item}" (expected base, prefix, domain or fqdn)`);
  }
  return out;
};

const HOST_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const DNS_NAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Served, so anything works, but a host name label is what clients expect. */
const location: Parser<string> = (s, ctx) => {
  if (!HOST_LABEL.test(s)) ctx.warn(`"${s}" is not a host name label`);
  return s;
};

function instanceValue(name: InstanceValueName): Parser<string> {
  const rule = INSTANCE_VALUE_RULES[name];
  return matching(rule.pattern, rule.what);
}

/** Unset means the zone's region; a region checked only when it is set, as a zone's is valid. */
const region: Parser<string> = (s, ctx) =>
  optional(s, ctx) === null ? regionOf(ctx.value('instance-defaults', 'availability_zone')) : instanceValue('region')(s, ctx);

/**
 * A directory inside userdata_dir: a `userdata_prefix` may only name templates there, so the
 * directory must never be userdata_dir itself (where the per-instance templates are) nor leave it.
 */
const prefixDir: Parser<string> = (s, ctx) => {
  const norm = path.posix.normalize(s);
  if (s === '' || path.isAbsolute(s) || norm === '.' || norm === '..' || norm.startsWith('../')) {
    ctx.fail('expected a directory inside userdata_dir, relative to it (not the directory itself)');
  }
  return norm.replace(/\/+$/, '');
};

/** Prefix names, separated by spaces or commas, each one a userdata_prefix would be accepted as. */
const prefixNames: Parser<readonly string[]> = (s, ctx) => {
  const names = s.split(/[\s,]+/).filter((x) => x !== '');
  for (const n of names) if (!isPrefixName(n)) ctx.fail(`"${n}" is not a prefix name (letters, digits, ".", "_" and "-", not starting with ".")`);
  return names;
};

/** nwfilter names, separated by spaces or commas. */
const filterNames: Parser<readonly string[]> = (s, ctx) => {
  const names = s.split(/[\s,]+/).filter(Boolean);
  for (const n of names) if (!NWFILTER_NAME.test(n)) ctx.fail(`"${n}" is not an nwfilter name (letters, digits and _ . : -)`);
  return names;
};

/** Host name labels, separated by spaces or commas: the names VMs may ask for mdserver by. */
const serviceNames: Parser<readonly string[]> = (s, ctx) => {
  const names = s.split(/[\s,]+/).filter(Boolean);
  for (const n of names) if (!HOST_LABEL.test(n)) ctx.fail(`"${n}" is not a host name label`);
  return names;
};

const hostShortName = (): string => os.hostname().split('.')[0] ?? os.hostname();
const NETWORK_MODES = ['static', 'dhcp'] as const satisfies readonly NetworkMode[];

export const SETTINGS = {
  mdserver: { section: 'mdserver', keys: {
    port: { key: 'port', default: '80', parse: int(0, 65535), restart: 'mdserver',
      doc: 'the TCP port the metadata server listens on' },
    metrics: { key: 'metrics', default: 'yes', parse: bool,
      doc: 'count requests, uploads and refusals and serve them at GET /metrics (Prometheus); no: neither' },
    listenAddress: { key: 'listen_address', default: '169.254.169.254', parse: ip, restart: 'mdserver',
      doc: 'the address the metadata server listens on; VMs get a route to it from dnsmasq' },
    userdataDir: { key: 'userdata_dir', default: '/etc/mdserver/userdata', parse: filePath,
      doc: 'the directory searched for user-data templates' },
    userdataSuffixes: { key: 'userdata_suffixes', default: ':.yaml', parse: list(':', true),
      doc: 'suffixes tried after each template name, colon separated; an empty one is the bare name' },
    userdataPrefixDir: { key: 'userdata_prefix_dir', default: 'prefixes', parse: prefixDir,
      doc: "the directory inside userdata_dir that a domain's userdata_prefix names a template in" },
    legacyPrefixes: { key: 'legacy_prefixes', default: '', parse: prefixNames,
      doc: "userdata_prefix names also looked up directly in userdata_dir, md_server's layout" },
    password: { key: 'password', default: '', parse: optional, secret: true,
      doc: 'an encrypted root password, given to templates as mdserver_password' },
    defaultTemplate: { key: 'default_template', default: '', parse: optionalPath,
      doc: 'the template used when none matches an instance; unset: a built-in one' },
    dbFile: { key: 'db_file', default: '/var/lib/mdserver/db_file.json', parse: filePath, restart: 'mdserver',
      doc: "the instance database; md_server's JSON file at this path is imported once" },
    logfile: { key: 'logfile', default: '/var/log/mdserver.log', parse: optionalPath,
      doc: 'a log file besides stdout; none for no file' },
    debug: { key: 'debug', default: 'no', parse: bool,
      doc: 'log at debug level everywhere' },
    debugUserdata: { key: 'debug_userdata', default: 'no', parse: bool,
      doc: 'write each rendered user-data to <run_dir>/<address>.userdata' },
    imdsTokens: { key: 'imds_tokens', default: 'optional', parse: choice<TokenMode>(['optional', 'required']),
      doc: 'IMDSv2 tokens: optional, or required (EC2: 401 without one; others need Metadata: true)' },
    // libvirt writes a few kilobytes per domain; 256 KiB leaves room for large metadata while
    // bounding what one upload can make the XML parser do.
    uploadMaxBytes: { key: 'upload_max_bytes', default: '262144', parse: int(1024, 64 * 1024 * 1024),
      doc: 'the largest domain XML /instance-upload accepts, in bytes' },
    uploadToken: { key: 'upload_token_file', default: '', parse: tokenFile,
      doc: 'a file whose token HTTP uploads must send (Authorization: Bearer); unset: none' },
    adminSocket: { key: 'admin_socket', default: '', parse: adminSocket, restart: 'mdserver',
      doc: 'the admin interface unix socket; empty: <run_dir>/admin.sock, no: none' },
    verifyMac: { key: 'verify_mac', default: 'no', parse: bool,
      doc: "refuse a caller whose MAC in the neighbour table is not its instance's" },
    requireFilter: { key: 'require_filter', default: 'warn', parse: choice<FilterPolicy>(['warn', 'no', 'yes']),
      doc: 'a VM without a trusted nwfilter: no (serve it), warn (serve, log, flag), yes (403)' },
    trustedFilters: { key: 'trusted_filters', default: 'clean-traffic clean-traffic-gateway', parse: filterNames,
      doc: 'nwfilters that stop MAC, IP and ARP spoofing (clean-traffic, or filters that include it)' },
    reportEvents: { key: 'report_events', default: 'yes', parse: bool,
      doc: "OpenStack and NoCloud vendor-data turn on cloud-init's event reporting to mdserver" },
    rateLimit: { key: 'rate_limit', default: '0', parse: int(0, 1_000_000),
      doc: 'requests per second each VM may make; 0: no limit' },
    rateBurst: { key: 'rate_burst', default: '200', parse: int(1, 1_000_000),
      doc: 'requests a VM may make at once before the rate limit applies' },
    maxConnectionsPerClient: { key: 'max_connections_per_client', default: '32', parse: int(1, 100_000),
      doc: 'open connections one VM (one source address) may hold; the host is not limited' },
    maxConnections: { key: 'max_connections', default: '4096', parse: int(1, 1_000_000),
      doc: 'open connections all VMs together may hold; the host is not limited' },
    ipv6: { key: 'ipv6', default: 'no', parse: bool, restart: 'both',
      doc: 'serve IPv6 too: instance IPv6 addresses, listen_address6, fe80::a9fe:a9fe, DHCPv6 and RA' },
    listenAddress6: { key: 'listen_address6', default: 'fd00:ec2::254', parse: ipv6, restart: 'mdserver',
      doc: 'the IPv6 address the metadata server listens on with ipv6 = yes (EC2 uses fd00:ec2::254)' },
    listenLinklocal: { key: 'listen_linklocal', default: 'yes', parse: bool, restart: 'mdserver',
      doc: 'with ipv6 = yes, also listen on fe80::a9fe:a9fe on [dnsmasq] interface (OpenStack\'s address)' },
  } },
  store: { section: 'store', keys: STORE_SETTINGS },
  loglevels: { section: 'loglevels', keys: {
    base: { key: 'base', default: 'info', parse: level, doc: 'the level below which nothing is logged' },
    stream: { key: 'stream', default: 'info', parse: level, doc: 'the level of the stdout log' },
    file: { key: 'file', default: 'debug', parse: level, doc: 'the level of the log file' },
    format: { key: 'format', default: 'text', parse: choice(['text', 'json'] as const),
      doc: 'text lines, or one JSON object per line (level, module, message, fields) for journald or Loki' },
  } },
  dnsmasq: { section: 'dnsmasq', keys: {
    user: { key: 'user', default: 'mdserver', parse: matching(/^[a-z_][a-z0-9_-]*\$?$/i, 'a user name'),
      restart: 'mdserver-dnsmasq', doc: 'the user dnsmasq runs as after start-up' },
    baseDir: { key: 'base_dir', default: '/var/lib/mdserver/dnsmasq', parse: filePath, restart: 'mdserver-dnsmasq',
      doc: 'the directory the dnsmasq files are written under' },
    runDir: { key: 'run_dir', default: '/var/run/mdserver', parse: filePath, restart: 'mdserver-dnsmasq',
      doc: "the directory of dnsmasq's pid file and the admin socket" },
    netName: { key: 'net_name', default: 'mds', restart: 'mdserver-dnsmasq',
      parse: matching(/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/, 'a network name (letters, digits, ".", "_", "-")'),
      doc: "the libvirt network of the VMs' interfaces; it names the dnsmasq files" },
    netAddress: { key: 'net_address', default: '10.122.0.0', parse: ipv4, restart: 'mdserver-dnsmasq',
      doc: 'the network addresses are allocated from' },
    netPrefix: { key: 'net_prefix', default: '16', parse: int(8, 30), restart: 'mdserver-dnsmasq',
      doc: "that network's prefix length" },
    gateway: { key: 'gateway', default: '10.122.0.1', parse: ipv4,
      doc: "the host's address on the network" },
    useDns: { key: 'use_dns', default: 'no', parse: bool,
      doc: "hand out dnsmasq as the VMs' DNS server" },
    interface: { key: 'interface', default: 'br-mds', parse: matching(/^[A-Za-z0-9_.:@-]{1,15}$/, 'an interface name'),
      restart: 'mdserver-dnsmasq', doc: 'the interface (bridge) the network is reached through' },
    listenAddress: { key: 'listen_address', default: '', parse: optionalIp, restart: 'mdserver-dnsmasq',
      doc: "an address for dnsmasq to listen on besides the interface's own" },
    leaseLen: { key: 'lease_len', default: '86400', parse: int(120, 2 ** 31 - 1), restart: 'mdserver-dnsmasq',
      doc: 'the DHCP lease length in seconds' },
    prefix: { key: 'prefix', default: 'no', parse: nameOrNo(/^[A-Za-z0-9][A-Za-z0-9-]*$/, 'a host name prefix (letters, digits, "-")'),
      doc: 'a prefix for the instance names in DNS' },
    domain: { key: 'domain', default: 'no', parse: nameOrNo(DNS_NAME, 'a DNS domain name'), restart: 'mdserver-dnsmasq',
      doc: 'the DNS domain of the instances' },
    net6Address: { key: 'net6_address', default: 'fd00:ec2::', parse: ipv6, restart: 'mdserver-dnsmasq',
      doc: 'the IPv6 prefix instance addresses are derived in (the IPv4 host part in its last 32 bits)' },
    net6Prefix: { key: 'net6_prefix', default: '64', parse: int(16, 64), restart: 'mdserver-dnsmasq',
      doc: "that prefix's length (64 at most: router advertisements and DHCPv6 work on /64 links)" },
    gateway6: { key: 'gateway6', default: 'fd00:ec2::1', parse: ipv6,
      doc: "the host's IPv6 address on the network: the VMs' router, and their DNS server with use_dns" },
    serviceNames: { key: 'service_names', default: 'metadata instance-data data-server', parse: serviceNames,
      doc: 'names that resolve to the metadata addresses in dnsmasq (also under domain); empty: none' },
    entryOrder: { key: 'entry_order', default: 'base', parse: entryOrder,
      doc: 'the DNS names each instance gets, in order: base, prefix, domain (or fqdn)' },
  } },
  service: { section: 'service', keys: {
    name: { key: 'name', default: 'mdserver', parse: text, doc: 'the service name served under /service/' },
    type: { key: 'type', default: 'mdserver', parse: text, doc: 'the service type served under /service/' },
    version: { key: 'version', default: () => VERSION, parse: text, doc: 'the version served under /service/; default: this release' },
    location: { key: 'location', default: hostShortName, parse: location,
      doc: "a short name for this host; default: the host's name up to the first dot" },
    ec2Versions: { key: 'ec2_versions', default: DEFAULT_EC2_VERSIONS, parse: ec2Versions,
      doc: 'the EC2 metadata versions served, comma separated' },
  } },
  instanceDefaults: { section: 'instance-defaults', keys: {
    availabilityZone: { key: 'availability_zone', default: 'mds-local-1a', parse: instanceValue('availability_zone'),
      doc: 'the EC2 availability zone of every instance its domain does not place elsewhere' },
    region: { key: 'region', default: '', parse: region, doc: 'the EC2 region; empty: the zone without its last letter' },
    instanceType: { key: 'instance_type', default: 'kvm.libvirt', parse: instanceValue('instance_type'),
      doc: 'the EC2 instance type' },
    amiId: { key: 'ami_id', default: 'ami-00000000', parse: instanceValue('ami_id'), doc: 'the EC2 image id' },
    accountId: { key: 'account_id', default: '000000000000', parse: instanceValue('account_id'), doc: 'the EC2 account id' },
    securityGroups: { key: 'security_groups', default: 'default', parse: instanceValue('security_groups'),
      doc: 'the EC2 security group names, comma separated' },
  } },
  openstack: { section: 'openstack', keys: {
    enabled: { key: 'enabled', default: 'yes', parse: bool, doc: 'serve the OpenStack format under /openstack/' },
    network: { key: 'network', default: 'dhcp', parse: choice<NetworkMode>(NETWORK_MODES),
      doc: "how network_data.json gives the VM's address: static or dhcp" },
    vendorData: { key: 'vendor_data_file', default: '', parse: jsonFile, doc: 'a JSON file served as vendor_data.json; unset: {}' },
    vendorData2: { key: 'vendor_data2_file', default: '', parse: jsonFile, doc: 'a JSON file served as vendor_data2.json; unset: {}' },
  } },
  nocloud: { section: 'nocloud', keys: {
    enabled: { key: 'enabled', default: 'yes', parse: bool, doc: 'serve the NoCloud seed under /nocloud/' },
    network: { key: 'network', default: 'dhcp', parse: choice<NetworkMode>(NETWORK_MODES),
      doc: "how network-config gives the VM's address: static or dhcp" },
    vendorData: { key: 'vendor_data_file', default: '', parse: fileText, doc: 'a file served as vendor-data as it is; unset: empty' },
  } },
  cloudstack: { section: 'cloudstack', keys: {
    enabled: { key: 'enabled', default: 'no', parse: bool, restart: 'mdserver',
      doc: "act as CloudStack's virtual router: also listen on the gateway, serve its keys and passwords" },
    passwordTtl: { key: 'password_ttl', default: '86400', parse: int(1, 365 * 86400),
      doc: 'seconds a password set for a VM waits to be fetched before it is deleted' },
    passwordPort: { key: 'password_port', default: '8080', parse: int(0, 65535), restart: 'mdserver',
      doc: 'the port of the password server (CloudStack guests ask 8080; 0: any free port, for tests)' },
  } },
} satisfies Record<string, SettingsSection>;

type Table = typeof SETTINGS;
/** The typed values of one section's settings, under their `Config` property names. */
type Values<K> = { readonly [P in keyof K]: K[P] extends Setting<infer T> ? T : never };
/** What the table alone gives the `Config`: its sections, each with its parsed settings. */
export type SettingValues = { readonly [S in keyof Table]: Values<Table[S]['keys']> };

/** One row of the table, with where its value lives in `Config`. */
export interface SettingEntry {
  /** `section.key`, as in the ini file and in `Config.values`. */
  readonly id: string;
  readonly section: string;
  readonly key: string;
  /** The `Config` property of the section, and of the value inside it. */
  readonly group: keyof Table;
  readonly prop: string;
  readonly setting: Setting<unknown>;
}

export const SETTING_LIST: readonly SettingEntry[] = Object.entries(SETTINGS).flatMap(([group, table]) =>
  Object.entries(table.keys as Readonly<Record<string, Setting<unknown>>>).map(([prop, setting]) => ({
    id: `${table.section}.${setting.key}`, section: table.section, key: setting.key, group: group as keyof Table, prop, setting,
  })),
);

const BY_ID = new Map(SETTING_LIST.map((e) => [e.id, e]));

export function findSetting(id: string): SettingEntry | undefined {
  return BY_ID.get(id);
}

export function defaultValue(s: Setting<unknown>): string {
  return typeof s.default === 'function' ? s.default() : s.default;
}

/** The parsed value of one setting in a configuration built from this table. */
export function settingValue(cfg: SettingValues, e: SettingEntry): unknown {
  return (cfg[e.group] as Readonly<Record<string, unknown>>)[e.prop];
}

/** Sections whose keys are free-form; every other section's keys must be known. */
export const OPEN_SECTIONS: ReadonlySet<string> = new Set(['public-keys', 'template-data', '_include_']);

/** md_server keys that mdserver reads elsewhere or ignores: never an unknown-key warning. */
export const LEGACY_KEYS: Readonly<Record<string, { readonly doc: string; readonly renamedTo?: string }>> = {
  'mdserver.loglevel': { doc: "md_server's name for [loglevels] base, which it still sets", renamedTo: 'loglevels.base' },
  'mdserver.hostname_prefix': { doc: 'read by md_server, not used' },
  'service.release_date': { doc: "always the release's own date" },
  'service.hostname': { doc: "always the host's own name" },
};
