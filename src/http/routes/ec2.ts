// The EC2 metadata paths: `/` (the version list) and `/<version>/...` from the caller's tree, and
// the IMDSv2 session-token rules that guard them.

import type { Request, Response } from 'express';
import { MdsError } from '../../errors.js';
import { plainPublicKeys } from '../../metadata/cloudstack.js';
import type { InstanceMetadata } from '../../metadata/service.js';
import { TOKEN_HEADER } from '../../metadata/token.js';
import type { Services } from '../../services.js';
import { sendText } from '../respond.js';
import { sendFromTree } from './fromTree.js';

/**
 * Enforces `[mdserver] imds_tokens`. A token that is present must be valid in either mode (a 401
 * makes cloud-init fetch a new one); without a token, only `optional` answers.
 */
export function checkToken(services: Services, req: Request, client: string): void {
  const token = req.headers[TOKEN_HEADER];
  if (token === undefined) {
    if (services.config().mdserver.imdsTokens === 'required') {
      throw new MdsError('TOKEN_REQUIRED', 'Unauthorized: a session token is required (PUT /latest/api/token)');
    }
    return;
  }
  const check = typeof token === 'string' ? services.tokens.check(token, client) : 'invalid';
  if (check !== 'valid') throw new MdsError('TOKEN_INVALID', `Unauthorized: the session token is ${check}`);
}

/** `/`: the configured versions, each as a directory. */
export function ec2VersionsHandler(services: Services) {
  return (_req: Request, res: Response): void => {
    sendText(res, services.config().service.ec2Versions.map((v) => `${v}/`).join('\n'));
  };
}

/** `/<version>/...`: the same tree for every version, as the paths cloud-init reads are. */
export function ec2Handler(services: Services) {
  return (req: Request, res: Response, segs: readonly string[], meta: InstanceMetadata): void => {
    if (services.config().cloudstack.enabled && meta.data.publicKeys.length > 0) {
      const plain = plainPublicKeys(meta.data, req.path);
      if (plain !== null) return sendText(res, plain);
    }
    sendFromTree(services, req, res, meta, meta.ec2, segs.slice(1), false);
  };
}
