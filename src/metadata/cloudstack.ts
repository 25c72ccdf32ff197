// Pure: what CloudStack's virtual router adds to `latest/meta-data/`, for images built for
// CloudStack (cloud-init's CloudStack datasource, BOSH stemcells, CloudStack's guest scripts).

import type { Config } from '../config/index.js';
import type { Node } from './tree.js';
import type { InstanceData } from './instanceData.js';

/**
 * CloudStack's meta-data keys besides those EC2 already has (instance-id, local-hostname,
 * local-ipv4). cloud-init's CloudStack datasource reads `availability-zone` at the top level (not
 * under `placement/`); there is no NAT here, so the public values are the local ones.
 * `cloud-identifier` names the cloud: one per host, as CloudStack has one per installation.
 */
export function cloudstackEntries(d: InstanceData, cfg: Config): [string, Node][] {
  return [
    ['availability-zone', d.availabilityZone],
    ['cloud-identifier', `CloudStack-{${cfg.service.location}}`],
    ['public-hostname', d.hostName],
    ['public-ipv4', d.ipv4],
    ['service-offering', d.instanceType],
    ['vm-id', d.uuid],
  ];
}

/**
 * `meta-data/public-keys` asked as a plain value (no trailing slash): CloudStack's guest scripts
 * read the keys themselves there, one per line, while the EC2 crawler asks `public-keys/` and
 * gets the `0=name` listing. Null when the request is not that path.
 */
export function plainPublicKeys(d: InstanceData, rawPath: string): string | null {
  if (!/\/meta-data\/+public-keys$/.test(rawPath)) return null;
  return d.publicKeys.map((k) => k.key).join('\n');
}
