// The NoCloud seed: `/nocloud/meta-data`, `user-data`, `vendor-data` and `network-config`, each
// for the calling VM. With `[mdserver] imds_tokens = required` they ask for the header
// `Metadata: true` (guards.ts); `[nocloud] enabled = no` turns these paths off.

import type { Request, Response } from 'express';
import type { ClientView } from '../../metadata/service.js';
import type { Services } from '../../services.js';
import { sendFromTree } from './fromTree.js';

/** `/nocloud` and below. */
export function nocloudHandler(services: Services) {
  return (req: Request, res: Response, segs: readonly string[], view: ClientView): void => {
    sendFromTree(services, req, res, view, view.nocloud, segs.slice(1), true);
  };
}
