// The one error type of mdserver: a stable code, the HTTP status it maps to, and a message that is
// safe to show to the client that caused it.

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
  | 'INTERNAL';

const STATUS: Record<ErrorCode, number> = {
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
  INTERNAL: 500,
};

export class MdsError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers, e.g. `Allow` for a 405. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; headers?: Record<string, string> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MdsError';
    this.code = code;
    this.status = STATUS[code];
    this.headers = options.headers ?? {};
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
