// The EC2 metadata paths: `/` and `/<version>/...`, answered from the caller's tree.

import type { Request, Response } from 'express';
import { MdsError } from '../../errors.js';
import { TOKEN_HEADER } from '../../metadata/token.js';
import { isDeferred, isDir, listDir, lookup } from '../../metadata/tree.js';
import type { Services } from '../../services.js';
import { clientAddress } from '../client.js';
import { HttpError } from '../errorReply.js';
import { sendText } from '../respond.js';

/** Splits a raw path into decoded segments; a bad escape is the client's error. */
export function segments(path: string): string[] {
  // Almost no metadata path has an escape; skip decoding when there is nothing to decode.
  if (!path.includes('%')) return path.split('/');
  try {
    return path.split('/').map((s) => decodeURIComponent(s));
  } catch {
    throw new MdsError('BAD_REQUEST', 'Bad request: malformed percent-encoding in the path');
  }
}

/**
 * Enforces `[mdserver] imds_tokens`. A token that is present must be valid in either mode (a 401
 * makes cloud-init fetch a new one); without a token, only `optional` answers.
 */
function checkToken(ctx: Services, req: Request, client: string): void {
  const token = req.headers[TOKEN_HEADER];
  if (token === undefined) {
    if (ctx.config().mdserver.imdsTokens === 'required') {
      throw new MdsError('TOKEN_REQUIRED', 'Unauthorized: a session token is required (PUT /latest/api/token)');
    }
    return;
  }
  const check = typeof token === 'string' ? ctx.tokens.check(token, client) : 'invalid';
  if (check !== 'valid') throw new MdsError('TOKEN_INVALID', `Unauthorized: the session token is ${check}`);
}

/** Handles GET/HEAD for `/` and every configured version; returns false for other paths. */
export function ec2Handler(ctx: Services) {
  return (req: Request, res: Response): boolean => {
    const cfg = ctx.config();
    // Empty segments are dropped, as EC2 does: the AWS SDK for JavaScript asks for
    // `//latest/meta-data/...` (its endpoint's `/` plus the path) and ec2-metadata for
    // `latest//meta-data/...`.
    const segs = segments(req.path).filter((s) => s !== '');
    const version = segs[0] ?? '';
    const isRoot = segs.length === 0;
    if (!isRoot && !cfg.service.ec2Versions.includes(version)) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new HttpError('METHOD_NOT_ALLOWED', `Method not allowed: ${req.method}`, { Allow: 'GET, HEAD' });
    }
    const client = clientAddress(req);
    checkToken(ctx, req, client);
    if (isRoot) {
      sendText(res, cfg.service.ec2Versions.map((v) => `${v}/`).join('\n'));
      return true;
    }
    const view = ctx.metadata.caller(client);
    const node = lookup(view.ec2, segs.slice(1));
    if (node === undefined) throw new MdsError('NOT_FOUND', `Resource not found: ${req.path}`);
    if (isDeferred(node)) sendText(res, ctx.userdata.render(view.data));
    else sendText(res, isDir(node) ? listDir(node) : node);
    return true;
  };
}
