// The OpenStack metadata paths: `/openstack` (the version list) and `/openstack/<version>/...`.
// OpenStack clients have no token protocol: with `[mdserver] imds_tokens = required` these paths
// ask for the header `Metadata: true` instead (guards.ts); `[openstack] enabled = no` turns them off.

import type { ServerResponse } from 'node:http';
import type { Asked } from '../asked.js';
import type { InstanceMetadata } from '../../metadata/service.js';
import { OPENSTACK_VERSIONS } from '../../metadata/openstack.js';
import type { Services } from '../../services.js';
import { sendText } from '../respond.js';
import { sendFromTree } from './fromTree.js';

const LISTING = [...OPENSTACK_VERSIONS, 'latest'].join('\n');

/** `/openstack`: the same for everyone; cloud-init polls it to see that the service is up. */
export function openstackVersionsHandler(_req: Asked, res: ServerResponse): void {
  sendText(res, LISTING);
}

/** `/openstack/<version>/...` from the caller's tree. */
export function openstackHandler(services: Services) {
  return (req: Asked, res: ServerResponse, segs: readonly string[], meta: InstanceMetadata): void => {
    sendFromTree(services, req, res, meta, meta.openstack, segs.slice(1), true);
  };
}
