// Pure: the bounded label values of the metrics. Every label comes from a fixed list here, never
// from what a client sent, so a flood of made-up paths or headers cannot grow the series.

import type { ErrorCode } from '../errors.js';

export const FORMATS = ['ec2', 'openstack', 'nocloud', 'token', 'upload', 'events', 'other'] as const;
export type RequestFormat = (typeof FORMATS)[number];

export const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx'] as const;

export const REFUSALS = [
  'unknown_client', 'unauthorised', 'token', 'spoofing', 'proxied', 'unfiltered', 'metadata_header', 'forbidden', 'rate_limit',
] as const;
export type RefusalReason = (typeof REFUSALS)[number];

export const OUTCOMES = ['ready', 'failed'] as const;
export type ProvisioningOutcome = (typeof OUTCOMES)[number];

/** The paths of the two formats that are one path each (see the route table). */
const TOKEN_PATH = '/latest/api/token';
const UPLOAD_PATH = '/instance-upload';
/** Where cloud-init posts its reports (http/routes/cloudInitEvents.ts). */
const EVENTS_PATH = '/cloud-init/events';

/**
 * The format a request path belongs to: its first segment, leading slashes collapsed (the AWS
 * SDK asks for `//latest/...`). `/` and the EC2 versions are EC2; anything not served is `other`.
 */
export function formatOf(path: string, ec2Versions: readonly string[]): RequestFormat {
  let start = 0;
  while (path.charCodeAt(start) === 47) start++;
  const slash = path.indexOf('/', start);
  const first = slash < 0 ? path.slice(start) : path.slice(start, slash);
  if (first === '') return 'ec2';
  if (first === 'openstack') return 'openstack';
  if (first === 'nocloud') return 'nocloud';
  if (first === 'instance-upload') return path === UPLOAD_PATH ? 'upload' : 'other';
  if (first === 'cloud-init') return path === EVENTS_PATH ? 'events' : 'other';
  if (first === 'latest' && path.endsWith('/api/token') && path.replace(/\/+/g, '/') === TOKEN_PATH) return 'token';
  return ec2Versions.includes(first) ? 'ec2' : 'other';
}

/** 0 for 2xx, 1 for 3xx, 2 for 4xx, 3 for 5xx (and anything else Node could report). */
export function statusClassIndex(status: number): number {
  if (status < 300) return 0;
  if (status < 400) return 1;
  return status < 500 ? 2 : 3;
}

const FORBIDDEN_REASONS: ReadonlySet<string> = new Set(['spoofing', 'proxied', 'unfiltered', 'metadata_header']);

/** What kind of refusal an error is, or null when it is no refusal (a 404, a fault of ours). */
export function refusalOf(code: ErrorCode, reason: string | undefined): RefusalReason | null {
  switch (code) {
    case 'UNKNOWN_CLIENT':
      return 'unknown_client';
    case 'UNAUTHORISED_CLIENT':
      return 'unauthorised';
    case 'TOKEN_INVALID':
    case 'TOKEN_REQUIRED':
      return 'token';
    case 'TOO_MANY_REQUESTS':
      return 'rate_limit';
    case 'FORBIDDEN':
      return reason !== undefined && FORBIDDEN_REASONS.has(reason) ? (reason as RefusalReason) : 'forbidden';
    default:
      return null;
  }
}
