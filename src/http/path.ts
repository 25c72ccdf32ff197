// Pure: a request path as the router reads it, worked out once per request.

import { MdsError } from '../errors.js';

/**
 * Collapses doubled slashes: clients build URLs by joining a base that may end in `/` with a path
 * that starts with one (the AWS SDK for JavaScript asks for `//latest/meta-data/...`, its token
 * PUT included, and ec2-metadata for `latest//meta-data/...`), and EC2 answers them all.
 */
export function collapseSlashes(raw: string): string {
  return raw.includes('//') ? raw.replace(/\/{2,}/g, '/') : raw;
}

/**
 * The decoded segments of a collapsed path, without the empty ones at either end, so that
 * `meta-data` and `meta-data/` name the same directory. A bad escape is the client's error.
 */
export function splitPath(path: string): string[] {
  const parts = path.split('/');
  // After collapseSlashes only the first part (before the leading `/`) and the last (after a
  // trailing `/`) can be empty.
  if (parts[0] === '') parts.shift();
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  // Almost no metadata path has an escape; skip decoding when there is nothing to decode.
  if (!path.includes('%')) return parts;
  try {
    return parts.map((s) => decodeURIComponent(s));
  } catch {
    throw new MdsError('BAD_REQUEST', 'Bad request: malformed percent-encoding in the path');
  }
}
