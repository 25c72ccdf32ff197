// GET /metrics: the Prometheus text exposition, for the host only (the route table says so) and
// on the admin socket.

import type { Request, Response } from 'express';
import type { Metrics } from '../../metrics/metrics.js';

export const METRICS_PATH = '/metrics';

export function metricsHandler(metrics: Metrics) {
  return async (_req: Request, res: Response): Promise<void> => {
    const body = await metrics.text();
    res.statusCode = 200;
    res.setHeader('Content-Type', metrics.contentType);
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(body);
  };
}
