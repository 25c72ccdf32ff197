// GET /metrics: the Prometheus text exposition, for the host only (the route table says so) and
// on the admin socket.

import type { Request, Response } from 'express';
import { MdsError } from '../../errors.js';
import type { Metrics } from '../../metrics/metrics.js';

export const METRICS_PATH = '/metrics';

/** `enabled` is `[mdserver] metrics`, read per request so that a reload turns it on or off. */
export function metricsHandler(metrics: Metrics, enabled: () => boolean) {
  return async (_req: Request, res: Response): Promise<void> => {
    if (!enabled()) throw new MdsError('NOT_FOUND', 'metrics are off ([mdserver] metrics = no)');
    const body = await metrics.text();
    res.statusCode = 200;
    res.setHeader('Content-Type', metrics.contentType);
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(body);
  };
}
