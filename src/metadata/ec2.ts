// Pure: the EC2 metadata tree of one instance (what `/<version>/` serves to it).

import type { Config } from '../config/index.js';
import { dir, type Dir, type Node } from './tree.js';
import { cloudstackEntries } from './cloudstack.js';
import { ids, type InstanceData } from './instanceData.js';

/** Characters EC2 allows in a tag key once tags are exposed in instance metadata. */
const TAG_KEY = /^[A-Za-z0-9+\-=.,_:@]{1,128}$/;
/** What Python's int() accepts, as cloud-init's safe_int uses it on the part before `=`. */
const PY_INT = /^[+-]?\d(_?\d)*$/;

/**
 * Why a domain's `mdserver:` metadata key cannot be served as `tags/instance/<key>`, or null when
 * it can. EC2's rules for tags in metadata: letters, digits and `+ - = . , _ : @`, at most 128
 * characters, and not `.`, `..` or `_index`. One more rule protects cloud-init: it reads a listing
 * line `N=name` with a numeric N as public key N (fetching `N/openssh-key`), so a key such as
 * `0=x` would send it to a path that does not exist, and one failed path drops all metadata.
 */
export function tagKeyProblem(k: string): string | null {
  if (!TAG_KEY.test(k)) return 'EC2 tag keys in metadata are 1 to 128 of the characters A-Z a-z 0-9 + - = . , _ : @';
  if (k === '.' || k === '..' || k === '_index') return 'EC2 reserves the tag keys ".", ".." and "_index"';
  const eq = k.indexOf('=');
  if (eq >= 0 && PY_INT.test(k.slice(0, eq))) return 'cloud-init would read a key of the form <number>=<name> as a public key';
  return null;
}

/** The instance tags served in metadata: every `mdserver:` entry whose key EC2 would accept. */
export function instanceTags(metadata: Readonly<Record<string, string>>): [string, string][] {
  return Object.entries(metadata).filter(([k]) => tagKeyProblem(k) === null);
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
                'security-groups': d.securityGroups.join('\n'),
                'subnet-id': id.subnetId,
                'subnet-ipv4-cidr-block': d.subnetCidr,
                'vpc-id': id.vpcId,
                'vpc-ipv4-cidr-block': d.subnetCidr,
                'vpc-ipv4-cidr-blocks': d.subnetCidr,
                // As EC2 serves them on an instance with IPv6; cloud-init turns ipv6s into dhcp6.
                ...(d.ipv6 ? {
                  ipv6s: d.ipv6.address,
                  'subnet-ipv6-cidr-blocks': d.ipv6.subnetCidr,
                  'vpc-ipv6-cidr-blocks': d.ipv6.subnetCidr,
                } : {}),
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
  meta.push(['reservation-id', id.reservationId], ['security-groups', d.securityGroups.join('\n')]);
  if (d.ipv6) meta.push(['ipv6', d.ipv6.address]);
  const tags = instanceTags(d.instance.metadata);
  if (tags.length > 0) meta.push(['tags', dir({ instance: dir(tags) })]);
  if (cfg.cloudstack.enabled) meta.push(...cloudstackEntries(d, cfg));
  meta.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  return dir({
    dynamic: dir({ 'instance-identity': dir({ document: identityDocument(d) }) }),
    'meta-data': dir(meta),
    'user-data': { deferred: 'user-data' },
  });
}
