// The public app's part of the metrics: each request's format, status class and latency once it
// is answered, and what kind of refusal or failure each error reply was.

import type { ServerResponse } from 'node:http';
import type { Asked } from './asked.js';
import { refusalOf } from '../metrics/classify.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Services } from '../services.js';
import type { ErrorReply } from './errorReply.js';

/**
 * Counts the request when its answer is written. One listener and two clock reads: the counts
 * themselves are plain numbers (metrics.ts), so this stays out of `npm run bench`'s figures.
 * `on`, not `once`: a response finishes once, and `once` allocates a wrapper per request.
 */
export function countRequest(services: Services, req: Asked, res: ServerResponse): void {
  const started = performance.now();
  res.on('finish', () => {
    services.metrics.request(req.path, services.config().service.ec2Versions, res.statusCode, (performance.now() - started) / 1000);
  });
}

/** Refusals by reason; templates that failed to render. */
export function countError(metrics: Metrics, reply: ErrorReply): void {
  const code = reply.error.code;
  const refusal = refusalOf(code, reply.error.reason);
  if (refusal !== null) metrics.refused(refusal);
  else if (code === 'TEMPLATE_FAILED' || code === 'TEMPLATE_UNSUPPORTED') metrics.templateFailed();
}
