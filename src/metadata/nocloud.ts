// Pure: the NoCloud seed of one instance (what `/nocloud/...` serves to it): the four files
// cloud-init's NoCloud datasource reads from a `ds=nocloud-net;s=<url>` seed.

import type { Config } from '../config/index.js';
import type { InstanceData } from './instanceData.js';
import { dir, type Dir } from './tree.js';
import { toYaml, type YamlValue } from './yaml.js';

/** The URL path the seed lives under; `mdserver sysinfo --style nocloud` points VMs at it. */
export const NOCLOUD_PREFIX = '/nocloud/';

export function nocloudMetaData(d: InstanceData): YamlValue {
  return {
    // The EC2 instance id, so that moving a VM between the EC2 and NoCloud styles is not a new
    // instance to cloud-init (which would, among other things, replace its SSH host keys).
    'instance-id': d.instanceId,
    'local-hostname': d.hostName,
    // cloud-init takes SSH keys from meta-data too, so they arrive even with a user-data
    // template that has none.
    'public-keys': d.publicKeys.map((k) => k.key),
  };
}

/**
 * Network config version 2 for the metadata NIC, matched by MAC (the guest's interface name is
 * unknown here) and not renamed.
 */
export function nocloudNetworkConfig(d: InstanceData, cfg: Config): YamlValue {
  const nic: Record<string, YamlValue> = { match: { macaddress: d.mac } };
  if (cfg.nocloud.network === 'dhcp' || !d.ipv4) {
    nic['dhcp4'] = true;
    if (d.ipv6) nic['dhcp6'] = true;
  } else {
    const v6 = d.ipv6;
    nic['addresses'] = [`${d.ipv4}/${d.netPrefix}`, ...(v6 ? [`${v6.address}/${v6.prefix}`] : [])];
    nic['routes'] = [{ to: '0.0.0.0/0', via: d.gateway }, ...(v6 ? [{ to: '::/0', via: v6.gateway }] : [])];
    const dns = [...d.dnsServers, ...(v6?.dnsServers ?? [])];
    if (dns.length > 0) nic['nameservers'] = { addresses: dns };
  }
  return { version: 2, ethernets: { mds0: nic } };
}

/**
 * All four files always answer: cloud-init retries a missing optional file for about ten
 * seconds before going on, which would stretch every boot.
 */
export function nocloudTree(d: InstanceData, cfg: Config): Dir {
  return dir({
    'meta-data': toYaml(nocloudMetaData(d)),
    'user-data': { deferred: 'user-data' },
    'vendor-data': cfg.mdserver.reportEvents ? { deferred: 'vendor-data', format: 'nocloud', base: cfg.nocloud.vendorData } : cfg.nocloud.vendorData,
    'network-config': toYaml(nocloudNetworkConfig(d, cfg)),
  });
}
