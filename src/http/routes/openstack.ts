// The OpenStack metadata paths: `/openstack` (the version list) and `/openstack/<version>/...`.
// There is no token here: OpenStack clients have no token protocol, so `[mdserver] imds_tokens`
// guards the EC2 paths only; `[openstack] enabled = no` turns these paths off.

import type { Request, Response } from 'express';
import { OPENSTACK_VERSIONS } from '../../metadata/openstack.js';
import type { Services } from '../../services.js';
import { sendText } from '../respond.js';
import { segments } from './ec2.js';
import { callerView, requireRead, sendFromTree } from './tree.js';

const LISTING = [...OPENSTACK_VERSIONS, 'latest'].join('\n');

/** Handles `/openstack` and below; returns false for other paths or when the format is off. */
export function openstackHandler(ctx: Services) {
  return (req: Request, res: Response): boolean => {
    const segs = segments(req.path);
    if (segs[1] !== 'openstack' || !ctx.config().openstack.enabled) return false;
    requireRead(req);
    const rest = segs.slice(2);
    // The version list is the same for everyone; cloud-init polls it to see the service is up.
    if (rest.every((s) => s === '')) {
      sendText(res, LISTING);
      return true;
    }
    const view = callerView(ctx, req);
    sendFromTree(ctx, req, res, view, view.openstack, rest);
    return true;
  };
}
