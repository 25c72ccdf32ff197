// Pure: the EC2 metadata tree of one instance (what `/<version>/` serves to it).

import type { Config } from '../config/index.js';
import { dir, type Dir, type Node } from './tree.js';
import { ids, type InstanceData } from './instanceData.js';

/** EC2's rules for instance tags in metadata: no `/`, not `.` or `..`, at most 128 characters. */
function servableTagKey(k: string): boolean {
  return k.length > 0 && k.length <= 128 && !k.includes('/') && k !== '.' && k !== '..' && !/[\u0000-\u001f]/.test(k);
}

export function identityDocument(d: InstanceData): string {
  // EC2 prints pendingTime without milliseconds.
  const pending = new Date(d.instance.firstSeen).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return JSON.stringify(
    {
      accountId: d.accountId,
      architecture: d.architecture,
      availabilityZone: d.availabilityZone,
      billingProducts: null,
      devpayProductCodes: null,
      marketplaceProductCodes: null,
      imageId: d.amiId,
      instanceId: d.instanceId,
      instanceType: d.instanceType,
      kernelId: null,
      pendingTime: pending,
      privateIp: d.ipv4,
      ramdiskId: null,
      region: d.region,
      version: '2017-09-30',
    },
    null,
    2,
  );
}

export function ec2Tree(d: InstanceData, cfg: Config): Dir {
  const id = ids(d, cfg);
  const meta: [string, Node][] = [
    ['ami-id', d.amiId],
    ['ami-launch-index', '0'],
    ['hostname', d.hostName],
    ['instance-id', d.instanceId],
    ['instance-type', d.instanceType],
    ['local-hostname', d.hostName],
    ['local-ipv4', d.ipv4],
    ['mac', d.mac],
    [
      'network',
      dir({
        interfaces: dir({
          macs: dir([
            [
              d.mac,
              dir({
                'device-number': '0',
                'interface-id': id.interfaceId,
                'local-hostname': d.hostName,
                'local-ipv4s': d.ipv4,
                mac: d.mac,
                'owner-id': d.accountId,
                'security-groups': d.securityGroups,
                'subnet-id': id.subnetId,
                'subnet-ipv4-cidr-block': d.subnetCidr,
                'vpc-id': id.vpcId,
                'vpc-ipv4-cidr-block': d.subnetCidr,
                'vpc-ipv4-cidr-blocks': d.subnetCidr,
              }),
            ],
          ]),
        }),
      }),
    ],
    ['placement', dir({ 'availability-zone': d.availabilityZone, region: d.region })],
  ];
  if (d.publicKeys.length > 0) {
    // cloud-init reads `N=name` and then fetches `N/openssh-key`.
    const keys = d.publicKeys.map((k, i) => [String(i), dir({ 'openssh-key': k.key })] as [string, Node]);
    meta.push(['public-keys', dir(keys, d.publicKeys.map((k, i) => `${i}=${k.name}`))]);
  }
  meta.push(['reservation-id', id.reservationId], ['security-groups', d.securityGroups]);
  const tags = Object.entries(d.instance.metadata).filter(([k]) => servableTagKey(k));
  if (tags.length > 0) meta.push(['tags', dir({ instance: dir(tags) })]);
  meta.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  return dir({
    dynamic: dir({ 'instance-identity': dir({ document: identityDocument(d) }) }),
    'meta-data': dir(meta),
    'user-data': { deferred: 'user-data' },
  });
}
