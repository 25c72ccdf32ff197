// Response helpers: IMDS answers are text/plain with no trailing newline.

import type { ServerResponse } from 'node:http';

/**
 * Writes a plain-text answer straight to Node's response. Express's `res.send` would also look up
 * the content type, compare freshness headers and build an ETag; none of that applies to metadata
 * and it was a measurable part of a metadata request (see doc/benchmarks.md). Node itself leaves
 * the body out of a HEAD answer.
 */
export function sendText(res: ServerResponse, body: string, status = 200): void {
  sendBody(res, body, 'text/plain; charset=utf-8', status);
}

/** Writes `body` as `type`, as Express's `res.type(...).send(body)` would with ETags off. */
export function sendBody(res: ServerResponse, body: string, type: string, status = 200): void {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

export const JSON_TYPE = 'application/json; charset=utf-8';

/** Writes a JSON answer (`Accept: application/json` on the EC2 paths, see accept.ts). */
export function sendJson(res: ServerResponse, value: unknown, status = 200): void {
  sendBody(res, JSON.stringify(value), JSON_TYPE, status);
}
