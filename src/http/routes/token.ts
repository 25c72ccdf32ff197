// PUT /latest/api/token: IMDSv2 session tokens.

import type { Request, Response } from 'express';
import { MdsError } from '../../errors.js';
import { TokenIssuer, TTL_HEADER } from '../../metadata/token.js';
import type { Services } from '../../services.js';
import { sendText } from '../respond.js';

export const TOKEN_PATH = '/latest/api/token';

/** Issues a token bound to the caller's address; the route table allows PUT only. */
export function tokenHandler(services: Services) {
  return (req: Request, res: Response, _segs: readonly string[], client: string): void => {
    // A request relayed by a proxy on the VM (an SSRF) must not get a token, as on EC2.
    if (req.headers['x-forwarded-for'] !== undefined) {
      throw new MdsError('FORBIDDEN', 'Forbidden: token requests may not carry X-Forwarded-For');
    }
    const ttl = TokenIssuer.parseTtl(req.get(TTL_HEADER));
    if (ttl === null) {
      throw new MdsError('BAD_REQUEST', `Bad request: ${TTL_HEADER} must be a whole number from 1 to 21600`);
    }
    res.set('X-Aws-Ec2-Metadata-Token-Ttl-Seconds', String(ttl));
    sendText(res, services.tokens.issue(client, ttl));
  };
}
