// Pure: the OpenStack metadata tree of one instance (what `/openstack/...` serves to it), in the
// shapes Nova writes and cloud-init's OpenStack datasource reads.

import { createHash } from 'node:crypto';
import type { Config } from '../config/index.js';
import { formatIPv6, prefixMask6 } from '../net/ip6.js';
import type { InstanceData } from './instanceData.js';
import { dir, type Dir, type Node } from './tree.js';

/**
 * The dated versions cloud-init knows, oldest first; it picks the newest one listed. Nova's later
 * versions (2020-10-14 and on) add nothing mdserver has, and cloud-init would not ask for them.
 */
export const OPENSTACK_VERSIONS = [
  '2012-08-10',
  '2013-04-04',
  '2013-10-17',
  '2015-10-15',
  '2016-06-30',
  '2016-10-06',
  '2017-02-22',
  '2018-08-27',
] as const;

/** What each version added that mdserver serves (Nova's names for them in comments). */
const HAVANA = '2013-10-17'; // vendor_data.json
const LIBERTY = '2015-10-15'; // network_data.json, project_id
const NEWTON_ONE = '2016-06-30'; // devices
const NEWTON_TWO = '2016-10-06'; // vendor_data2.json

/** `latest` is the newest dated version, as in Nova. */
function resolve(version: string): string {
  return version === 'latest' ? (OPENSTACK_VERSIONS[OPENSTACK_VERSIONS.length - 1] as string) : version;
}

/** Dated versions compare as strings (YYYY-MM-DD). */
function atLeast(version: string, since: string): boolean {
  return resolve(version) >= since;
}

/** A stable UUID-shaped identifier derived from `seed` (Nova's port and network ids are UUIDs). */
function uuidFrom(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function metaData(d: InstanceData, cfg: Config, version: string): Record<string, unknown> {
  const md: Record<string, unknown> = { uuid: d.uuid };
  const meta = d.instance.metadata;
  // Nova's `meta` is the server's key/value metadata; cloud-init also reads `meta.dsmode` from it.
  if (Object.keys(meta).length > 0) md['meta'] = { ...meta };
  if (d.publicKeys.length > 0) {
    md['public_keys'] = Object.fromEntries(d.publicKeys.map((k) => [k.name, k.key]));
    md['keys'] = d.publicKeys.map((k) => ({ name: k.name, type: 'ssh', data: k.key }));
  }
  // Nova appends its DHCP domain to the host name; the dnsmasq domain is the same thing here.
  md['hostname'] = cfg.dnsmasq.domain ? `${d.hostName}.${cfg.dnsmasq.domain}` : d.hostName;
  md['name'] = d.instance.name;
  md['launch_index'] = 0;
  md['availability_zone'] = d.availabilityZone;
  // Nova's random_seed (2013-04-04 on) is left out: a value cached per instance would hand
  // every boot the same "entropy", which is worse than none; cloud-init treats it as optional.
  if (atLeast(version, LIBERTY)) md['project_id'] = d.accountId;
  if (atLeast(version, NEWTON_ONE)) md['devices'] = [];
  return md;
}

/**
 * network_data.json as Nova's netutils writes it: one link for the metadata NIC (found by its
 * MAC, since mdserver cannot know the guest's interface name), one IPv4 network on it, and the
 * DNS service when dnsmasq hands one out.
 */
export function networkData(d: InstanceData, cfg: Config): Record<string, unknown> {
  const linkId = `tap${d.mac.replace(/:/g, '').slice(-8)}`;
  const networkId = uuidFrom(`network:${cfg.dnsmasq.netName}:${d.subnetCidr}`);
  const services = [...d.dnsServers, ...(d.ipv6?.dnsServers ?? [])].map((address) => ({ type: 'dns', address }));
  const link = {
    id: linkId,
    vif_id: uuidFrom(`port:${d.mac}`),
    // Nova's type for a guest NIC plugged into a Linux bridge; cloud-init treats it as physical.
    type: 'bridge',
    mtu: null,
    ethernet_mac_address: d.mac,
  };
  const network =
    cfg.openstack.network === 'dhcp' || !d.ipv4
      ? { id: 'network0', type: 'ipv4_dhcp', link: linkId, network_id: networkId }
      : {
          id: 'network0',
          type: 'ipv4',
          link: linkId,
          ip_address: d.ipv4,
          netmask: d.netmask,
          routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: d.gateway }],
          network_id: networkId,
          services,
        };
  const networks: Record<string, unknown>[] = [network];
  if (d.ipv6) networks.push(ipv6Network(d, cfg, linkId, networkId));
  return { links: [link], networks, services };
}

/** The link's IPv6 network: DHCPv6 (the router advertisement says managed), or the address itself. */
function ipv6Network(d: InstanceData, cfg: Config, link: string, networkId: string): Record<string, unknown> {
  const v6 = d.ipv6 as NonNullable<InstanceData['ipv6']>;
  if (cfg.openstack.network === 'dhcp') return { id: 'network1', type: 'ipv6_dhcp', link, network_id: networkId };
  return {
    id: 'network1',
    type: 'ipv6',
    link,
    ip_address: v6.address,
    // Nova writes IPv6 netmasks as addresses too (ffff:ffff:ffff:ffff::).
    netmask: formatIPv6(prefixMask6(v6.prefix)),
    routes: [{ network: '::', netmask: '::', gateway: v6.gateway }],
    network_id: networkId,
    services: v6.dnsServers.map((address) => ({ type: 'dns', address })),
  };
}

function versionDir(d: InstanceData, cfg: Config, version: string): Dir {
  const files: [string, Node][] = [
    ['meta_data.json', JSON.stringify(metaData(d, cfg, version))],
    ['user_data', { deferred: 'user-data' }],
  ];
  // Nova's `password` (2013-04-04 on) is not offered: mdserver has no password store.
  if (atLeast(version, HAVANA)) {
    const base = cfg.openstack.vendorData;
    files.push(['vendor_data.json', cfg.mdserver.reportEvents ? { deferred: 'vendor-data', format: 'openstack', base } : base]);
  }
  if (atLeast(version, LIBERTY)) files.push(['network_data.json', JSON.stringify(networkData(d, cfg))]);
  if (atLeast(version, NEWTON_TWO)) files.push(['vendor_data2.json', cfg.openstack.vendorData2]);
  return dir(files);
}

/** The tree under `/openstack`: the version list, then one directory per version. */
export function openstackTree(d: InstanceData, cfg: Config): Dir {
  const versions = [...OPENSTACK_VERSIONS, 'latest'];
  // Nova lists versions one per line without a trailing slash; cloud-init reads them that way.
  return dir(
    versions.map((v) => [v, versionDir(d, cfg, v)] as [string, Node]),
    versions,
  );
}
