// Pure: the per-instance facts every metadata format serves, derived once from the stored
// record and the configuration (domain `mdserver:` metadata overriding the defaults).

import { createHash } from 'node:crypto';
import type { Config, PublicKey } from '../config/index.js';
import { dnsServer } from '../dnsmasq/render.js';
import type { Instance } from '../store/store.js';

export interface InstanceData {
  readonly instance: Instance;
  readonly instanceId: string;
  /** The libvirt domain uuid: OpenStack clients compare it with the DMI system uuid. */
  readonly uuid: string;
  readonly hostName: string;
  readonly ipv4: string;
  readonly mac: string;
  readonly availabilityZone: string;
  readonly region: string;
  readonly instanceType: string;
  readonly amiId: string;
  readonly accountId: string;
  /** Security group names; EC2 serves them one per line. */
  readonly securityGroups: readonly string[];
  readonly architecture: string;
  readonly subnetCidr: string;
  readonly netmask: string;
  readonly netPrefix: number;
  readonly gateway: string;
  /** What DHCP tells the VM to use for DNS (empty unless `[dnsmasq] use_dns`). */
  readonly dnsServers: readonly string[];
  readonly publicKeys: readonly PublicKey[];
}

function hex(s: string, n: number): string {
  return createHash('sha256').update(s).digest('hex').slice(0, n);
}

/** libvirt's architecture names -> the names EC2's identity document uses. */
function ec2Arch(arch: string | null): string {
  switch (arch) {
    case 'aarch64':
      return 'arm64';
    case 'i686':
    case 'i386':
      return 'i386';
    default:
      return arch ?? 'x86_64';
  }
}

/** Splits a comma- or space-separated list of security group names. */
export function groupList(s: string): string[] {
  return s.split(/[\s,]+/).filter(Boolean);
}

/**
 * The `mdserver:` metadata keys that override `[instance-defaults]` for one domain, with the form
 * a value must have: each is served as a single metadata value (and cloud-init turns a value with
 * a newline into a list), so anything else is ignored and reported by `overrideProblems`.
 */
const OVERRIDES: Record<string, { pattern: RegExp; what: string }> = {
  availability_zone: { pattern: /^[A-Za-z0-9-]{0,62}[a-z]$/, what: 'a zone name ending in a letter, e.g. mds-local-1a' },
  region: { pattern: /^[A-Za-z0-9-]{1,63}$/, what: 'a region name (letters, digits, "-")' },
  instance_type: { pattern: /^[A-Za-z0-9._-]{1,64}$/, what: 'an instance type (letters, digits, ".", "_", "-")' },
  ami_id: { pattern: /^[A-Za-z0-9._-]{1,64}$/, what: 'an image id (letters, digits, ".", "_", "-")' },
  security_groups: { pattern: /^[A-Za-z0-9._:@+=-]+([\s,]+[A-Za-z0-9._:@+=-]+)*$/, what: 'security group names separated by commas' },
};

function override(md: Readonly<Record<string, string>>, key: string): string | undefined {
  const v = md[key]?.trim();
  const rule = OVERRIDES[key];
  return v !== undefined && rule && rule.pattern.test(v) ? v : undefined;
}

/** One message per `mdserver:` override that is present but ignored because of its form. */
export function overrideProblems(md: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  for (const [key, rule] of Object.entries(OVERRIDES)) {
    const v = md[key];
    if (v !== undefined && override(md, key) === undefined) {
      out.push(`mdserver:${key} = ${JSON.stringify(v.slice(0, 80))} is ignored: expected ${rule.what}`);
    }
  }
  return out;
}

export function instanceData(inst: Instance, cfg: Config): InstanceData {
  const md = inst.metadata;
  const d = cfg.instanceDefaults;
  const zoneOverride = override(md, 'availability_zone');
  const zone = zoneOverride ?? d.availabilityZone;
  const { netmask } = netmaskOf(cfg.dnsmasq.netPrefix);
  return {
    instance: inst,
    // md_server's instance id; changing it would make cloud-init treat every VM as new.
    instanceId: `i-${inst.ipv4 ?? inst.uuid}`,
    uuid: inst.uuid,
    hostName: inst.hostName,
    ipv4: inst.ipv4 ?? '',
    mac: inst.mac,
    availabilityZone: zone,
    // A domain placed in another zone is in that zone's region (EC2 names a zone region + letter)
    // unless it names its region too.
    region: override(md, 'region') ?? (zoneOverride ? zone.slice(0, -1) : d.region),
    instanceType: override(md, 'instance_type') ?? d.instanceType,
    amiId: override(md, 'ami_id') ?? d.amiId,
    accountId: d.accountId,
    securityGroups: groupList(override(md, 'security_groups') ?? d.securityGroups),
    architecture: ec2Arch(inst.arch),
    subnetCidr: `${cfg.dnsmasq.netAddress}/${cfg.dnsmasq.netPrefix}`,
    netmask,
    netPrefix: cfg.dnsmasq.netPrefix,
    gateway: cfg.dnsmasq.gateway,
    dnsServers: cfg.dnsmasq.useDns ? [dnsServer(cfg)] : [],
    publicKeys: cfg.publicKeys,
  };
}

function netmaskOf(prefix: number): { netmask: string } {
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { netmask: [m >>> 24, (m >>> 16) & 255, (m >>> 8) & 255, m & 255].join('.') };
}

/** Stable pseudo-identifiers EC2 clients expect to exist (vpc-…, eni-…, r-…). */
export function ids(data: InstanceData, cfg: Config): { vpcId: string; subnetId: string; interfaceId: string; reservationId: string } {
  return {
    vpcId: `vpc-${hex(cfg.dnsmasq.netName, 17)}`,
    subnetId: `subnet-${hex(data.subnetCidr, 17)}`,
    interfaceId: `eni-${hex(data.mac, 17)}`,
    reservationId: `r-${hex(data.instance.uuid, 17)}`,
  };
}
