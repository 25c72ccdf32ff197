// The one error type of mdserver: a stable code and a message that is safe to show to the client
// that caused it. What a code means on the wire (HTTP status, headers) is the HTTP layer's
// business (src/http/errorReply.ts), so the store, config and CLI code here know nothing of HTTP.

export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'UNKNOWN_CLIENT'
  | 'UNAUTHORISED_CLIENT'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'BAD_REQUEST'
  | 'BAD_DOMAIN_XML'
  | 'NO_MDS_INTERFACE'
  | 'BAD_USERDATA_PREFIX'
  | 'CONFLICT'
  | 'POOL_EXHAUSTED'
  | 'BODY_TOO_LARGE'
  | 'TOKEN_INVALID'
  | 'TOKEN_REQUIRED'
  | 'TOO_MANY_REQUESTS'
  | 'TEMPLATE_FAILED'
  | 'TEMPLATE_UNSUPPORTED'
  | 'DB_FORMAT'
  | 'STORE_UNAVAILABLE'
  | 'INTERNAL';

export class MdsError extends Error {
  readonly code: ErrorCode;
  /**
   * A finer, stable name for what was refused within the code (a FORBIDDEN for a spoofed MAC or
   * for a proxy's headers), for the metrics: the message is for people and may change.
   */
  readonly reason: string | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; reason?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MdsError';
    this.code = code;
    this.reason = options.reason;
  }
}

export function isMdsError(e: unknown): e is MdsError {
  return e instanceof MdsError;
}

/** A short description of any thrown value, for log lines. */
export function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
