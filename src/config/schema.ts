// The typed configuration: md_server's sections, keys and defaults, validated once into a frozen
// object. Every problem is collected, each naming the file, section, key and value, so that one
// run of `mdserver --check-config` shows them all.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseLevel, type Level } from '../log.js';
import { broadcast, formatIPv4, inNet, isIP, isNetworkAddress, net4, parseIPv4, type Net4 } from '../net/ip.js';
import { RELEASE_DATE, VERSION } from '../version.js';
import type { RawConfig } from './ini.js';

export type EntryKind = 'base' | 'prefix' | 'domain';
export type TokenMode = 'optional' | 'required';
/** What the OpenStack and NoCloud network documents tell a VM: its allocated address, or DHCP. */
export type NetworkMode = 'static' | 'dhcp';

export interface PublicKey {
  readonly name: string;
  readonly key: string;
}

export interface Config {
  /** Every file that was read, main file first. */
  readonly files: readonly string[];
  readonly mdserver: {
    readonly port: number;
    readonly listenAddress: string;
    readonly userdataDir: string;
    readonly userdataSuffixes: readonly string[];
    readonly password: string | null;
    readonly defaultTemplate: string | null;
    readonly dbFile: string;
    readonly logfile: string | null;
    readonly debug: boolean;
    readonly debugUserdata: boolean;
    readonly imdsTokens: TokenMode;
    readonly uploadMaxBytes: number;
    /** The host-only admin interface (unix socket); null when disabled with `no`. */
    readonly adminSocket: string | null;
    /** Refuse a caller whose MAC in the kernel neighbour table is not the instance's MAC. */
    readonly verifyMac: boolean;
    /** Per-client requests per second (0: no limit) and burst. */
    readonly rateLimit: number;
    readonly rateBurst: number;
  };
  readonly loglevels: { readonly base: Level; readonly stream: Level; readonly file: Level };
  readonly publicKeys: readonly PublicKey[];
  readonly dnsmasq: {
    readonly user: string;
    readonly baseDir: string;
    readonly runDir: string;
    readonly netName: string;
    readonly net: Net4;
    readonly netAddress: string;
    readonly netPrefix: number;
    readonly gateway: string;
    readonly useDns: boolean;
    readonly interface: string;
    readonly listenAddress: string | null;
    readonly leaseLen: number;
    readonly prefix: string | null;
    readonly domain: string | null;
    readonly entryOrder: readonly EntryKind[];
  };
  /** `[template-data]` after `_config_items_` has been applied (core names are added later). */
  readonly templateData: Readonly<Record<string, string>>;
  readonly service: {
    readonly name: string;
    readonly type: string;
    readonly version: string;
    readonly releaseDate: string;
    readonly location: string;
    readonly hostname: string;
    readonly ec2Versions: readonly string[];
  };
  /** Per-instance EC2 values a domain's `mdserver:` metadata may override. */
  readonly instanceDefaults: {
    readonly availabilityZone: string;
    readonly region: string;
    readonly instanceType: string;
    readonly amiId: string;
    readonly accountId: string;
    readonly securityGroups: string;
  };
  /** The OpenStack metadata format (`/openstack/...`). */
  readonly openstack: {
    readonly enabled: boolean;
    readonly network: NetworkMode;
    /** JSON text served as vendor_data.json and vendor_data2.json (`{}` when no file is set). */
    readonly vendorData: string;
    readonly vendorData2: string;
  };
  /** The NoCloud seed (`/nocloud/...`). */
  readonly nocloud: {
    readonly enabled: boolean;
    readonly network: NetworkMode;
    /** Served as vendor-data as it is (empty when no file is set). */
    readonly vendorData: string;
  };
  /** Every effective value as `section.key` -> string, for `_config_items_` and the config dump. */
  readonly values: ReadonlyMap<string, string>;
}

export interface ConfigProblem {
  file: string;
  section: string;
  key: string;
  value: string;
  message: string;
}

export function formatProblem(p: ConfigProblem): string {
  if (!p.section) return `${p.file}: ${p.message}`;
  return `${p.file}: [${p.section}] ${p.key} = ${JSON.stringify(p.value)}: ${p.message}`;
}

export const DEFAULT_CONFIG_FILE = '/etc/mdserver/mdserver.conf';
/** The admin socket's file name inside `[dnsmasq] run_dir` when `admin_socket` is left empty. */
export const ADMIN_SOCKET_NAME = 'admin.sock';
/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/**
 * Where the admin socket lives: empty means `<run_dir>/admin.sock`, `no` (or none/off/false)
 * disables it, anything else is a path relative to the main config file's directory. Exported so
 * that the command line can find a running server even when the file on disk no longer validates.
 */
export function adminSocketPath(raw: string, runDir: string, configDir: string): string | null {
  const s = raw.trim();
  if (['no', 'none', 'off', 'false'].includes(s.toLowerCase())) return null;
  if (s === '') return path.join(path.resolve(configDir, runDir), ADMIN_SOCKET_NAME);
  return path.resolve(configDir, s);
}

export const DEFAULT_EC2_VERSIONS = '2009-04-04,2016-09-02,2018-09-24,2021-03-23,latest';
/** The versions cloud-init's EC2 datasource can use (22.4 and later), newest first. */
const CLOUD_INIT_VERSIONS = ['2021-03-23', '2018-09-24', '2016-09-02', '2009-04-04'];

/** md_server's defaults, key for key, plus the keys mdserver adds. */
function defaults(): Record<string, Record<string, string>> {
  const fqdn = os.hostname();
  return {
    mdserver: {
      port: '80',
      listen_address: '169.254.169.254',
      userdata_dir: '/etc/mdserver/userdata',
      userdata_suffixes: ':.yaml',
      password: '',
      default_template: '',
      db_file: '/var/lib/mdserver/db_file.json',
      logfile: '/var/log/mdserver.log',
      debug: 'no',
      debug_userdata: 'no',
      imds_tokens: 'optional',
      upload_max_bytes: '1048576',
      admin_socket: '',
      verify_mac: 'no',
      rate_limit: '0',
      rate_burst: '200',
    },
    loglevels: { base: 'info', stream: 'info', file: 'debug' },
    dnsmasq: {
      user: 'mdserver',
      base_dir: '/var/lib/mdserver/dnsmasq',
      run_dir: '/var/run/mdserver',
      net_name: 'mds',
      net_address: '10.122.0.0',
      net_prefix: '16',
      gateway: '10.122.0.1',
      use_dns: 'no',
      interface: 'br-mds',
      listen_address: '',
      lease_len: '86400',
      prefix: 'no',
      domain: 'no',
      entry_order: 'base',
    },
    service: {
      name: 'mdserver',
      type: 'mdserver',
      version: VERSION,
      location: fqdn.split('.')[0] ?? fqdn,
      ec2_versions: DEFAULT_EC2_VERSIONS,
    },
    'instance-defaults': {
      availability_zone: 'mds-local-1a',
      region: '',
      instance_type: 'kvm.libvirt',
      ami_id: 'ami-00000000',
      account_id: '000000000000',
      security_groups: 'default',
    },
    openstack: { enabled: 'yes', network: 'dhcp', vendor_data_file: '', vendor_data2_file: '' },
    nocloud: { enabled: 'yes', network: 'dhcp', vendor_data_file: '' },
  };
}

/** Sections whose keys are free-form; every other section's keys must be known. */
const OPEN_SECTIONS = new Set(['public-keys', 'template-data', '_include_']);
/** Keys md_server accepted that mdserver reads elsewhere or ignores; never an error. */
const LEGACY_KEYS = new Set(['mdserver.loglevel', 'mdserver.hostname_prefix', 'service.release_date', 'service.hostname']);

const BOOLEANS: Record<string, boolean> = {
  yes: true, no: false, true: true, false: false, on: true, off: false, '1': true, '0': false,
};

const HOST_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

class Validator {
  readonly problems: ConfigProblem[] = [];
  readonly warnings: string[] = [];
  readonly values = new Map<string, string>();
  private readonly origin = new Map<string, string>();

  constructor(raw: RawConfig, private readonly configDir: string) {
    for (const [section, keys] of Object.entries(defaults())) {
      for (const [key, value] of Object.entries(keys)) {
        this.values.set(`${section}.${key}`, value);
        this.origin.set(`${section}.${key}`, '(default)');
      }
    }
    for (const [section, keys] of raw) {
      for (const [key, v] of keys) {
        const id = `${section}.${key}`;
        if (!OPEN_SECTIONS.has(section) && !this.origin.has(id) && !LEGACY_KEYS.has(id)) {
          this.warnings.push(`${v.file}: [${section}] ${key} is not a known setting; ignored`);
        }
        this.values.set(id, v.value);
        this.origin.set(id, v.file);
      }
    }
    // md_server's one renamed key: the old name always wins when present.
    const old = raw.get('mdserver')?.get('loglevel');
    if (old) {
      this.values.set('loglevels.base', old.value);
      this.origin.set('loglevels.base', old.file);
      this.warnings.push(`${old.file}: [mdserver] loglevel is deprecated; it now sets [loglevels] base`);
    }
  }

  raw(section: string, key: string): string {
    return this.values.get(`${section}.${key}`) ?? '';
  }

  fail(section: string, key: string, message: string): void {
    const id = `${section}.${key}`;
    this.problems.push({ file: this.origin.get(id) ?? '(default)', section, key, value: this.values.get(id) ?? '', message });
  }

  string(section: string, key: string): string {
    return this.raw(section, key).trim();
  }

  optional(section: string, key: string): string | null {
    const v = this.string(section, key);
    return v === '' || v.toLowerCase() === 'none' ? null : v;
  }

  bool(section: string, key: string): boolean {
    const v = BOOLEANS[this.string(section, key).toLowerCase()];
    if (v === undefined) {
      this.fail(section, key, 'expected a boolean (yes/no, true/false, on/off, 1/0)');
      return false;
    }
    return v;
  }

  int(section: string, key: string, min: number, max: number): number {
    const s = this.string(section, key);
    if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) {
      this.fail(section, key, `expected a whole number from ${min} to ${max}`);
      return min;
    }
    return Number(s);
  }

  ipv4(section: string, key: string): number {
    const n = parseIPv4(this.string(section, key));
    if (n === null) {
      this.fail(section, key, 'expected an IPv4 address');
      return 0;
    }
    return n;
  }

  ip(section: string, key: string): string {
    const s = this.string(section, key);
    if (!isIP(s)) this.fail(section, key, 'expected an IP address');
    return s;
  }

  /** Paths are taken relative to the main config file's directory. */
  path(section: string, key: string): string {
    const s = this.string(section, key);
    if (s === '') {
      this.fail(section, key, 'expected a path');
      return s;
    }
    return path.resolve(this.configDir, s);
  }

  optionalPath(section: string, key: string): string | null {
    const s = this.optional(section, key);
    return s === null ? null : path.resolve(this.configDir, s);
  }

  choice<T extends string>(section: string, key: string, options: readonly T[]): T {
    const s = this.string(section, key).toLowerCase();
    const hit = options.find((o) => o === s);
    if (hit === undefined) {
      this.fail(section, key, `expected ${options.join(' or ')}`);
      return options[0] as T;
    }
    return hit;
  }

  /**
   * An optional file read once at load time, so that `--check-config` reports a missing or bad
   * file instead of every VM getting an error later. Returns null when the key is unset.
   */
  fileText(section: string, key: string, maxBytes = 1024 * 1024): string | null {
    const file = this.optionalPath(section, key);
    if (file === null) return null;
    try {
      const st = fs.statSync(file);
      if (!st.isFile()) throw new Error('not a regular file');
      if (st.size > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
      return new TextDecoder('utf-8', { fatal: true }).decode(fs.readFileSync(file));
    } catch (e) {
      const why = e instanceof TypeError ? 'not UTF-8 text' : (e as Error).message;
      this.fail(section, key, `cannot read ${file}: ${why}`);
      return null;
    }
  }

  /** An optional JSON document file, re-serialised compactly; `{}` when the key is unset. */
  jsonFile(section: string, key: string): string {
    const text = this.fileText(section, key);
    if (text === null) return '{}';
    try {
      return JSON.stringify(JSON.parse(text));
    } catch (e) {
      this.fail(section, key, `${this.optionalPath(section, key) ?? ''} is not JSON: ${(e as Error).message}`);
      return '{}';
    }
  }

  level(section: string, key: string): Level {
    const l = parseLevel(this.string(section, key));
    if (!l) {
      this.fail(section, key, 'expected a log level (debug, info, warning, error, critical)');
      return 'info';
    }
    return l;
  }

  /** md_server's "boolean or value": `no` disables, anything else is the value itself. */
  nameOrNo(section: string, key: string, pattern: RegExp, what: string): string | null {
    const s = this.string(section, key);
    const b = BOOLEANS[s.toLowerCase()];
    if (b === false || s === '') return null;
    if (b === true || !pattern.test(s)) {
      this.fail(section, key, `expected ${what}, or no`);
      return null;
    }
    return s;
  }
}

const NETWORK_MODES: readonly NetworkMode[] = ['static', 'dhcp'];

const DNS_NAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface BuildResult {
  config: Config | null;
  problems: ConfigProblem[];
  warnings: string[];
}

export function buildConfig(raw: RawConfig, files: string[], mainFile: string): BuildResult {
  const v = new Validator(raw, path.dirname(path.resolve(mainFile)));

  const port = v.int('mdserver', 'port', 0, 65535);
  const listenAddress = v.ip('mdserver', 'listen_address');
  const tokens = v.string('mdserver', 'imds_tokens').toLowerCase();
  if (tokens !== 'optional' && tokens !== 'required') v.fail('mdserver', 'imds_tokens', 'expected optional or required');

  const netAddress = v.ipv4('dnsmasq', 'net_address');
  const netPrefix = v.int('dnsmasq', 'net_prefix', 8, 30);
  const network = net4(netAddress, netPrefix);
  if (!v.problems.some((p) => p.section === 'dnsmasq') && !isNetworkAddress(netAddress, netPrefix)) {
    v.fail('dnsmasq', 'net_address', `has host bits set for prefix /${netPrefix}`);
  }
  const gateway = v.ipv4('dnsmasq', 'gateway');
  if (!v.problems.some((p) => p.section === 'dnsmasq') &&
      (!inNet(network, gateway) || gateway === netAddress || gateway === broadcast(network))) {
    v.fail('dnsmasq', 'gateway', `must be a host address inside ${formatIPv4(netAddress)}/${netPrefix}`);
  }
  const dnsListen = v.optional('dnsmasq', 'listen_address');
  if (dnsListen !== null && !isIP(dnsListen)) v.fail('dnsmasq', 'listen_address', 'expected an IP address');

  const entryOrder: EntryKind[] = [];
  for (const item of v.string('dnsmasq', 'entry_order').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    if (item.startsWith('base')) entryOrder.push('base');
    else if (item.startsWith('prefix')) entryOrder.push('prefix');
    else if (item === 'domain' || item === 'fqdn') entryOrder.push('domain');
    else v.fail('dnsmasq', 'entry_order', `unknown entry "${item}" (expected base, prefix, domain or fqdn)`);
  }

  const netName = v.string('dnsmasq', 'net_name');
  if (!/^[A-Za-z0-9_.-]+$/.test(netName) || netName.startsWith('.')) {
    v.fail('dnsmasq', 'net_name', 'expected a network name (letters, digits, ".", "_", "-")');
  }
  const iface = v.string('dnsmasq', 'interface');
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(iface)) v.fail('dnsmasq', 'interface', 'expected an interface name');
  const user = v.string('dnsmasq', 'user');
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(user)) v.fail('dnsmasq', 'user', 'expected a user name');

  const publicKeys: PublicKey[] = [];
  for (const [key, rv] of raw.get('public-keys') ?? []) {
    const k = rv.value.trim();
    if (/[\r\n]/.test(k)) v.fail('public-keys', key, 'a key must be on one line');
    else if (k) publicKeys.push({ name: key, key: k });
  }
  if (publicKeys.length === 0) v.warnings.push('no [public-keys] configured: instances will get no SSH keys');

  const templateData: Record<string, string> = {};
  for (const [key, rv] of raw.get('template-data') ?? []) {
    if (key !== '_config_items_') templateData[key] = rv.value;
  }
  const items = raw.get('template-data')?.get('_config_items_')?.value ?? '';
  for (const item of items.split(',').map((s) => s.trim()).filter(Boolean)) {
    const dot = item.indexOf('.');
    const value = v.values.get(item);
    if (dot < 1 || value === undefined) {
      v.fail('template-data', '_config_items_', `"${item}" does not name a section.key that is set`);
      continue;
    }
    const name = item.slice(dot + 1);
    if (!(name in templateData)) templateData[name] = value;
  }

  const versions = v.string('service', 'ec2_versions').split(',').map((s) => s.trim()).filter(Boolean);
  if (versions.length === 0) v.fail('service', 'ec2_versions', 'expected at least one version');
  for (const ver of versions) {
    if (!/^[A-Za-z0-9._-]+$/.test(ver)) v.fail('service', 'ec2_versions', `"${ver}" is not a version name`);
  }
  // cloud-init asks for the first of 2021-03-23, 2018-09-24 and 2016-09-02 that answers, and
  // otherwise uses 2009-04-04 without asking: with none of the four it finds no metadata at all.
  if (versions.length > 0 && !CLOUD_INIT_VERSIONS.some((ver) => versions.includes(ver))) {
    v.warnings.push(`[service] ec2_versions lists none of ${CLOUD_INIT_VERSIONS.join(', ')}: cloud-init's EC2 datasource will find no metadata`);
  }
  if (versions.length > 0 && !versions.includes('latest')) {
    v.warnings.push('[service] ec2_versions lacks latest: most tools other than cloud-init (ec2-metadata, AWS SDKs) read /latest/');
  }

  const zone = v.string('instance-defaults', 'availability_zone');
  if (!/^[A-Za-z0-9-]+[a-z]$/.test(zone)) {
    v.fail('instance-defaults', 'availability_zone', 'expected a zone name ending in a letter, e.g. mds-local-1a');
  }
  const region = v.optional('instance-defaults', 'region') ?? zone.slice(0, -1);
  if (!/^[A-Za-z0-9-]{1,63}$/.test(region)) v.fail('instance-defaults', 'region', 'expected a region name (letters, digits, "-")');
  // Each of these is served as one metadata value: a space or newline would change what clients read.
  for (const key of ['instance_type', 'ami_id', 'account_id']) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(v.string('instance-defaults', key))) {
      v.fail('instance-defaults', key, 'expected one word of letters, digits, ".", "_" or "-"');
    }
  }
  if (!/^[A-Za-z0-9._:@+=-]+([\s,]+[A-Za-z0-9._:@+=-]+)*$/.test(v.string('instance-defaults', 'security_groups'))) {
    v.fail('instance-defaults', 'security_groups', 'expected security group names separated by commas');
  }

  const runDir = v.path('dnsmasq', 'run_dir');
  const configDir = path.dirname(path.resolve(mainFile));
  const adminSocket = adminSocketPath(v.raw('mdserver', 'admin_socket'), runDir, configDir);
  if (adminSocket !== null && Buffer.byteLength(adminSocket) > MAX_SOCKET_PATH) {
    v.fail('mdserver', 'admin_socket', `the socket path ${adminSocket} is longer than ${MAX_SOCKET_PATH} bytes`);
  }

  const cfg: Config = {
    files,
    mdserver: {
      port,
      listenAddress,
      userdataDir: v.path('mdserver', 'userdata_dir'),
      userdataSuffixes: v.raw('mdserver', 'userdata_suffixes').split(':').map((s) => s.trim()),
      password: v.optional('mdserver', 'password'),
      defaultTemplate: v.optionalPath('mdserver', 'default_template'),
      dbFile: v.path('mdserver', 'db_file'),
      logfile: v.optionalPath('mdserver', 'logfile'),
      debug: v.bool('mdserver', 'debug'),
      debugUserdata: v.bool('mdserver', 'debug_userdata'),
      imdsTokens: tokens === 'required' ? 'required' : 'optional',
      uploadMaxBytes: v.int('mdserver', 'upload_max_bytes', 1024, 64 * 1024 * 1024),
      adminSocket,
      verifyMac: v.bool('mdserver', 'verify_mac'),
      rateLimit: v.int('mdserver', 'rate_limit', 0, 1_000_000),
      rateBurst: v.int('mdserver', 'rate_burst', 1, 1_000_000),
    },
    loglevels: { base: v.level('loglevels', 'base'), stream: v.level('loglevels', 'stream'), file: v.level('loglevels', 'file') },
    publicKeys,
    dnsmasq: {
      user,
      baseDir: v.path('dnsmasq', 'base_dir'),
      runDir,
      netName,
      net: network,
      netAddress: formatIPv4(netAddress),
      netPrefix,
      gateway: formatIPv4(gateway),
      useDns: v.bool('dnsmasq', 'use_dns'),
      interface: iface,
      listenAddress: dnsListen,
      leaseLen: v.int('dnsmasq', 'lease_len', 120, 2 ** 31 - 1),
      prefix: v.nameOrNo('dnsmasq', 'prefix', /^[A-Za-z0-9][A-Za-z0-9-]*$/, 'a host name prefix (letters, digits, "-")'),
      domain: v.nameOrNo('dnsmasq', 'domain', DNS_NAME, 'a DNS domain name'),
      entryOrder,
    },
    templateData,
    service: {
      name: v.string('service', 'name'),
      type: v.string('service', 'type'),
      version: v.string('service', 'version'),
      releaseDate: RELEASE_DATE,
      location: v.string('service', 'location'),
      hostname: os.hostname(),
      ec2Versions: versions,
    },
    instanceDefaults: {
      availabilityZone: zone,
      region,
      instanceType: v.string('instance-defaults', 'instance_type'),
      amiId: v.string('instance-defaults', 'ami_id'),
      accountId: v.string('instance-defaults', 'account_id'),
      securityGroups: v.string('instance-defaults', 'security_groups'),
    },
    openstack: {
      enabled: v.bool('openstack', 'enabled'),
      network: v.choice('openstack', 'network', NETWORK_MODES),
      vendorData: v.jsonFile('openstack', 'vendor_data_file'),
      vendorData2: v.jsonFile('openstack', 'vendor_data2_file'),
    },
    nocloud: {
      enabled: v.bool('nocloud', 'enabled'),
      network: v.choice('nocloud', 'network', NETWORK_MODES),
      vendorData: v.fileText('nocloud', 'vendor_data_file') ?? '',
    },
    values: v.values,
  };
  if (!HOST_LABEL.test(cfg.service.location)) {
    v.warnings.push(`[service] location "${cfg.service.location}" is not a host name label`);
  }
  if (v.problems.length > 0) return { config: null, problems: v.problems, warnings: v.warnings };
  return { config: deepFreeze(cfg), problems: [], warnings: v.warnings };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    if (!(o instanceof Map)) for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

/** Keys whose values are never shown: md_server hid these, and derived copies of them too. */
const SECRET_SECTIONS = new Set(['public-keys', 'template-data']);
export function isSecret(id: string): boolean {
  const [section, key] = id.split('.', 2);
  return SECRET_SECTIONS.has(section ?? '') || key === 'password';
}

/** The resolved configuration as `section.key=value` lines, secrets replaced. */
export function dumpConfig(cfg: Config): string[] {
  const lines: string[] = [];
  for (const [id, value] of [...cfg.values].sort(([a], [b]) => a.localeCompare(b))) {
    if (id.startsWith('_include_.')) lines.push(`${id}=${value}`);
    else if (isSecret(id)) lines.push(`${id}=<hidden>`);
    else lines.push(`${id}=${value}`);
  }
  return lines;
}
