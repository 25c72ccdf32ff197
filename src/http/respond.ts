// Response helpers: IMDS answers are text/plain with no trailing newline.

import type { Response } from 'express';

/**
 * Writes a plain-text answer straight to Node's response. Express's `res.send` would also look up
 * the content type, compare freshness headers and build an ETag; none of that applies to metadata
 * and it was a measurable part of a metadata request (see doc/benchmarks.md). Node itself leaves
 * the body out of a HEAD answer.
 */
export function sendText(res: Response, body: string, status = 200): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** Writes a JSON answer (`Accept: application/json` on the EC2 paths, see accept.ts). */
export function sendJson(res: Response, value: unknown, status = 200): void {
  const body = JSON.stringify(value);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
