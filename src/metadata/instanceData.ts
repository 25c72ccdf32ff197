// Pure: the per-instance facts every metadata format serves, derived once from the stored
// record and the configuration (domain `mdserver:` metadata overriding the defaults).

import { createHash } from 'node:crypto';
import type { Config, PublicKey } from '../config/index.js';
import { INSTANCE_VALUE_RULES, OVERRIDABLE, regionOf, validInstanceValue, type InstanceValueName } from '../config/instanceValues.js';
import { dnsServer } from '../dnsmasq/render.js';
import type { Instance } from '../store/store.js';
import { netmask } from '../net/ip.js';

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
  /** The instance's IPv6 side; null unless `[mdserver] ipv6 = yes` gave it an address. */
  readonly ipv6: InstanceIPv6 | null;
  readonly publicKeys: readonly PublicKey[];
}

export interface InstanceIPv6 {
  readonly address: string;
  /** `net6_address/net6_prefix`. */
  readonly subnetCidr: string;
  readonly prefix: number;
  readonly gateway: string;
  /** What DHCPv6 and RA tell the VM to use for DNS (empty unless `use_dns`). */
  readonly dnsServers: readonly string[];
}

function ipv6Of(inst: Instance, cfg: Config): InstanceIPv6 | null {
  const d = cfg.dnsmasq;
  if (cfg.dnsmasq.plan6 === null || inst.ipv6 === null) return null;
  return {
    address: inst.ipv6,
    subnetCidr: `${d.net6Address}/${d.net6Prefix}`,
    prefix: d.net6Prefix,
    gateway: d.gateway6,
    dnsServers: d.useDns ? [d.gateway6] : [],
  };
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
 * A domain's `mdserver:` metadata value overriding `[instance-defaults]`, when it has the form the
 * configuration requires of the default (anything else is ignored and reported by `overrideProblems`).
 */
function override(md: Readonly<Record<string, string>>, key: InstanceValueName): string | undefined {
  const v = md[key]?.trim();
  return v !== undefined && OVERRIDABLE.includes(key) && validInstanceValue(key, v) ? v : undefined;
}

/** One message per `mdserver:` override that is present but ignored because of its form. */
export function overrideProblems(md: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  for (const key of OVERRIDABLE) {
    const v = md[key];
    if (v !== undefined && override(md, key) === undefined) {
      out.push(`mdserver:${key} = ${JSON.stringify(v.slice(0, 80))} is ignored: expected ${INSTANCE_VALUE_RULES[key].what}`);
    }
  }
  return out;
}

export function instanceData(inst: Instance, cfg: Config): InstanceData {
  const md = inst.metadata;
  const d = cfg.instanceDefaults;
  const zoneOverride = override(md, 'availability_zone');
  const zone = zoneOverride ?? d.availabilityZone;
  const mask = netmask(cfg.dnsmasq.netPrefix);
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
    region: override(md, 'region') ?? (zoneOverride ? regionOf(zone) : d.region),
    instanceType: override(md, 'instance_type') ?? d.instanceType,
    amiId: override(md, 'ami_id') ?? d.amiId,
    accountId: d.accountId,
    securityGroups: groupList(override(md, 'security_groups') ?? d.securityGroups),
    architecture: ec2Arch(inst.arch),
    subnetCidr: `${cfg.dnsmasq.netAddress}/${cfg.dnsmasq.netPrefix}`,
    netmask: mask,
    netPrefix: cfg.dnsmasq.netPrefix,
    gateway: cfg.dnsmasq.gateway,
    dnsServers: cfg.dnsmasq.useDns ? [dnsServer(cfg)] : [],
    ipv6: ipv6Of(inst, cfg),
    publicKeys: cfg.publicKeys,
  };
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
