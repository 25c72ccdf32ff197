// The NoCloud seed: `/nocloud/meta-data`, `user-data`, `vendor-data` and `network-config`, each
// for the calling VM. `[nocloud] enabled = no` turns these paths off.

import type { Request, Response } from 'express';
import { NOCLOUD_PREFIX } from '../../metadata/nocloud.js';
import type { Services } from '../../services.js';
import { segments } from './ec2.js';
import { callerView, requireRead, sendFromTree } from './tree.js';

const TOP = NOCLOUD_PREFIX.replace(/\//g, '');

/** Handles `/nocloud` and below; returns false for other paths or when the format is off. */
export function nocloudHandler(ctx: Services) {
  return (req: Request, res: Response): boolean => {
    const segs = segments(req.path);
    if (segs[1] !== TOP || !ctx.config().nocloud.enabled) return false;
    requireRead(req);
    const view = callerView(ctx, req);
    sendFromTree(ctx, req, res, view, view.nocloud, segs.slice(2));
    return true;
  };
}
