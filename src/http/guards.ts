// Checks the route table declares besides the method and the caller: requests relayed by a
// proxy, the header that OpenStack and NoCloud callers must send when tokens are required, and
// the host's upload token.
// Each throws the refusal; the dispatcher (app.ts) decides which routes get which check.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/index.js';
import { MdsError } from '../errors.js';
import { HttpError } from './errorReply.js';

/** Headers a proxy adds to what it relays; a VM's own client never sends them to 169.254.169.254. */
const FORWARDING_HEADERS = ['x-forwarded-for', 'forwarded', 'via'] as const;
const FORWARDING_NAMES: Readonly<Record<(typeof FORWARDING_HEADERS)[number], string>> = {
  'x-forwarded-for': 'X-Forwarded-For',
  forwarded: 'Forwarded',
  via: 'Via',
};

/**
 * A request relayed by a proxy on a VM (a web application tricked into fetching a URL: SSRF)
 * comes from the VM's own address, so the source address alone cannot tell it apart. EC2 refuses
 * a token PUT that carries X-Forwarded-For; here every request for instance data (and for the
 * host's paths) is refused when it carries any of the headers proxies add.
 */
export function refuseForwarded(req: IncomingMessage): void {
  const h = req.headers;
  for (const name of FORWARDING_HEADERS) {
    if (h[name] !== undefined) {
      throw new MdsError('FORBIDDEN', `Forbidden: the request carries ${FORWARDING_NAMES[name]}, so it came through a proxy`, { reason: 'proxied' });
    }
  }
}

/** The header Azure's metadata service requires (GCE's is `Metadata-Flavor: Google`). */
export const METADATA_HEADER = 'metadata';

/**
 * With `imds_tokens = required` the EC2 paths need a session token, which takes a PUT with a
 * custom header first: a GET-only SSRF cannot get one. OpenStack and NoCloud clients have no
 * token protocol, so those paths ask instead for a header a plain SSRF cannot add, as Azure and
 * GCE do. Stock cloud-init does not send it (its OpenStack reader and NoCloud's `read_seeded` pass
 * no headers), so with tokens required those datasources are turned away: doc/datasources.md.
 */
export function checkMetadataHeader(cfg: Config, req: IncomingMessage): void {
  if (cfg.mdserver.imdsTokens !== 'required') return;
  const v = req.headers[METADATA_HEADER];
  if (typeof v === 'string' && v.toLowerCase() === 'true') return;
  throw new MdsError('FORBIDDEN', 'Forbidden: with imds_tokens = required, OpenStack and NoCloud requests need the header "Metadata: true"', { reason: 'metadata_header' });
}

const BEARER = /^Bearer +([^\s]+) *$/i;

/**
 * With `[mdserver] upload_token_file` set, an upload over HTTP must carry
 * `Authorization: Bearer <the file's token>`: loopback is open to every local user, who could
 * otherwise rewrite any VM's record. Unset, uploads stay open as md_server's were (and
 * `mdserver status` says so). The comparison takes the same time whatever the guess.
 */
export function checkUploadToken(cfg: Config, req: IncomingMessage): void {
  const want = cfg.mdserver.uploadToken;
  if (want === null) return;
  const got = BEARER.exec(req.headers.authorization ?? '')?.[1];
  if (got !== undefined && sameSecret(got, want)) return;
  throw new HttpError('UNAUTHORISED_CLIENT', 'Unauthorised: an upload needs the header "Authorization: Bearer <the token in [mdserver] upload_token_file>"',
    { 'WWW-Authenticate': 'Bearer realm="mdserver"' });
}

/** Equal in constant time: both sides are hashed first, so neither length nor content leaks. */
function sameSecret(a: string, b: string): boolean {
  const h = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}
