// POST /cloud-init/events: the calling VM's cloud-init reports its progress here (its `reporting`
// webhook handler, one JSON event per post, and `phone_home`'s form). The route table makes it an
// instance route: the caller is found, verified and rate limited like every metadata request, and
// it can only ever add to its own instance's timeline.

import type { ServerResponse } from 'node:http';
import type { Asked } from '../asked.js';
import type { InstanceMetadata } from '../../metadata/service.js';
import { parseReport } from '../../provisioning/report.js';
import type { Services } from '../../services.js';
import { readBody } from './upload.js';

export const EVENTS_PATH = '/cloud-init/events';
/** cloud-init's events are a few hundred bytes; phone_home with every host key a few KiB. */
export const EVENTS_MAX_BYTES = 64 * 1024;

export function cloudInitEventsHandler(services: Services) {
  return async (req: Asked, res: ServerResponse, _segs: readonly string[], meta: InstanceMetadata): Promise<void> => {
    const body = await readBody(req, EVENTS_MAX_BYTES);
    const event = parseReport(body, req.headers['content-type'], Date.now());
    services.provisioning.report(meta.data.instance.uuid, event);
    // Answered at once: the events are for display, and cloud-init posts them one by one from a
    // queue that each stage waits to drain, so a slow answer would slow every boot.
    res.statusCode = 204;
    res.end();
  };
}
