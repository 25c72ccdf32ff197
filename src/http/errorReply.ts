// How an error reaches an HTTP client: the status of each MdsError code, the headers some
// refusals carry, how loudly each is logged, and the one error handler that the public and the
// admin apps share (each app formats its own body).

import type { NextFunction, Request, Response } from 'express';
import type { ServerResponse } from 'node:http';
import type { Asked } from './asked.js';
import { describe, isMdsError, MdsError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { RefusalLog } from './refusalLog.js';

export const STATUS: Readonly<Record<ErrorCode, number>> = {
  CONFIG_INVALID: 500,
  UNKNOWN_CLIENT: 400,
  UNAUTHORISED_CLIENT: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  BAD_REQUEST: 400,
  BAD_DOMAIN_XML: 400,
  NO_MDS_INTERFACE: 400,
  BAD_USERDATA_PREFIX: 400,
  CONFLICT: 409,
  POOL_EXHAUSTED: 409,
  BODY_TOO_LARGE: 413,
  TOKEN_INVALID: 401,
  TOKEN_REQUIRED: 401,
  TOO_MANY_REQUESTS: 429,
  TEMPLATE_FAILED: 500,
  TEMPLATE_UNSUPPORTED: 500,
  DB_FORMAT: 500,
  // The shared store is unreachable: nothing was stored, and the hook's retry will be answered.
  STORE_UNAVAILABLE: 503,
  INTERNAL: 500,
};

/** A refusal whose reply needs headers: `Allow` on a 405, `Retry-After` on a 429. */
export class HttpError extends MdsError {
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, message: string, headers: Record<string, string>) {
    super(code, message);
    this.name = 'HttpError';
    this.headers = headers;
  }
}

export type ReplyLevel = 'error' | 'warn' | 'debug';

export interface ErrorReply {
  /** What the client is told: the error thrown, or the one that stands in for it. */
  readonly error: MdsError;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly level: ReplyLevel;
  /** Neither an MdsError nor a body parser's refusal: a fault of ours, logged with its stack. */
  readonly unexpected: boolean;
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * The log level of a reply: error for our own faults (5xx); debug for what clients do routinely,
 * a 404 (cloud-init probes for optional keys such as user-data) and a 429 (the flood is logged
 * once by the rate limiter); warn for every other refusal.
 */
export function levelOf(status: number): ReplyLevel {
  if (status >= 500) return 'error';
  return status === 404 || status === 429 ? 'debug' : 'warn';
}

/** Pure: the status, headers and log level for anything thrown while answering a request. */
export function errorReply(err: unknown): ErrorReply {
  let error: MdsError;
  let unexpected = false;
  if (isMdsError(err)) error = err;
  else if (isClientError(err)) error = new MdsError(err.status === 413 ? 'BODY_TOO_LARGE' : 'BAD_REQUEST', `Bad request: ${err.message}`);
  else {
    error = new MdsError('INTERNAL', 'Internal error');
    unexpected = true;
  }
  const status = STATUS[error.code];
  const headers = error instanceof HttpError ? error.headers : NO_HEADERS;
  return { error, status, headers, level: levelOf(status), unexpected };
}

/** Errors from Express's body parsers (too large, bad encoding) carry a 4xx `status`. */
function isClientError(e: unknown): e is { status: number; message: string } {
  const s = (e as { status?: unknown } | null)?.status;
  return typeof s === 'number' && s >= 400 && s < 500;
}

/**
 * `Q` and `S` are what the app's requests and responses are: Express's, or Node's own for the
 * public app, which answers metadata requests before Express too (app.ts).
 */
export interface ErrorHandlerOptions<Q extends Asked = Request, S extends ServerResponse = Response> {
  log: Logger;
  /** Writes the body in the app's own format; the status and headers are already set. */
  send(res: S, reply: ErrorReply): void;
  /** Fields for the refusal's log line besides its code and path (the public app names the client). */
  fields?(req: Q): Record<string, unknown>;
  /**
   * Limits the warning and error lines per client (the public app, where every caller may be a
   * VM): at most one a minute, carrying the count of those left out. Debug lines are not limited.
   */
  throttle?: { readonly refusals: RefusalLog; client(req: Q): string };
  /** Told of every error reply (the metrics count refusals and failures by kind). */
  observe?(reply: ErrorReply): void;
}

/**
 * The one place where errors become replies: nothing unexpected escapes as a stack trace, and
 * every refusal is logged with its reason (at most once a minute per client where throttled).
 */
export function answerError<Q extends Asked, S extends ServerResponse>(o: ErrorHandlerOptions<Q, S>, err: unknown, req: Q, res: S): void {
  const reply = errorReply(err);
  o.observe?.(reply);
  const left = reply.level === 'debug' || !o.throttle ? 0 : o.throttle.refusals.admit(o.throttle.client(req));
  if (left !== null) logReply(o, req, err, reply, left);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.statusCode = reply.status;
  for (const [name, value] of Object.entries(reply.headers)) res.setHeader(name, value);
  o.send(res, reply);
}

/** The same as Express's error middleware. */
export function errorHandler(o: ErrorHandlerOptions) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => answerError(o, err, req, res);
}

/** The refusal's line (and the stack of an unexpected error); `left` counts lines left out before it. */
function logReply<Q extends Asked, S extends ServerResponse>(o: ErrorHandlerOptions<Q, S>, req: Q, err: unknown, reply: ErrorReply, left: number): void {
  if (reply.unexpected) o.log.error('unexpected error', { path: req.path, error: describe(err), stack: (err as Error)?.stack });
  const fields: Record<string, unknown> = { ...o.fields?.(req), code: reply.error.code, path: req.path.slice(0, 256) };
  if (left > 0) fields['suppressed'] = left;
  o.log.log(reply.level, reply.error.message, fields);
}
