// PUT /latest/api/token: IMDSv2 session tokens.

import type { Request, Response } from 'express';
import { MdsError } from '../../errors.js';
import { TokenIssuer, TTL_HEADER } from '../../metadata/token.js';
import type { Services } from '../../services.js';
import { sendText } from '../respond.js';

export const TOKEN_PATH = '/latest/api/token';

/**
 * Issues a token bound to the caller's address. The route table allows PUT only and refuses a
 * request relayed by a proxy (an SSRF on the VM), as EC2 does.
 */
export function tokenHandler(services: Services) {
  return (req: Request, res: Response, _segs: readonly string[], client: string): void => {
    const ttl = TokenIssuer.parseTtl(req.get(TTL_HEADER));
    if (ttl === null) {
      throw new MdsError('BAD_REQUEST', `Bad request: ${TTL_HEADER} must be a whole number from 1 to 21600`);
    }
    res.set('X-Aws-Ec2-Metadata-Token-Ttl-Seconds', String(ttl));
    sendText(res, services.tokens.issue(client, ttl));
  };
}
