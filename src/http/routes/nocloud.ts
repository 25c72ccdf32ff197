// The NoCloud seed: `/nocloud/meta-data`, `user-data`, `vendor-data` and `network-config`, each
// for the calling VM. With `[mdserver] imds_tokens = required` they ask for the header
// `Metadata: true` (guards.ts); `[nocloud] enabled = no` turns these paths off.

import type { ServerResponse } from 'node:http';
import type { Asked } from '../asked.js';
import type { InstanceMetadata } from '../../metadata/service.js';
import type { Services } from '../../services.js';
import { sendFromTree } from './fromTree.js';

/** `/nocloud` and below. */
export function nocloudHandler(services: Services) {
  return (req: Asked, res: ServerResponse, segs: readonly string[], meta: InstanceMetadata): void => {
    sendFromTree(services, req, res, meta, meta.nocloud, segs.slice(1), true);
  };
}
