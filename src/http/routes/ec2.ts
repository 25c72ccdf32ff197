// The EC2 metadata paths: `/` (the version list) and `/<version>/...` from the caller's tree, and
// the IMDSv2 session-token rules that guard them.

import type { ServerResponse } from 'node:http';
import type { Asked } from '../asked.js';
import { MdsError } from '../../errors.js';
import { plainPublicKeys } from '../../metadata/cloudstack.js';
import type { InstanceMetadata } from '../../metadata/service.js';
import { TOKEN_HEADER } from '../../metadata/token.js';
import type { Services } from '../../services.js';
import { lookup } from '../../metadata/tree.js';
import { treeJson } from '../../metadata/treeJson.js';
import { wantsJson } from '../accept.js';
import { sendJson, sendText } from '../respond.js';
import { reportUrl, sendFromTree } from './fromTree.js';

/**
 * Enforces `[mdserver] imds_tokens`. A token that is present must be valid in either mode (a 401
 * makes cloud-init fetch a new one); without a token, only `optional` answers.
 */
export function checkToken(services: Services, req: Asked, client: string): void {
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

/**
 * `/`: the configured versions, each as a directory; as JSON, the list of their names (anyone may
 * ask here, so there is no instance's tree to put under them).
 */
export function ec2VersionsHandler(services: Services) {
  return (req: Asked, res: ServerResponse): void => {
    const versions = services.config().service.ec2Versions;
    if (wantsJson(req.headers.accept)) return sendJson(res, versions);
    sendText(res, versions.map((v) => `${v}/`).join('\n'));
  };
}

/** `/<version>/...`: the same tree for every version, as the paths cloud-init reads are. */
export function ec2Handler(services: Services) {
  return (req: Asked, res: ServerResponse, segs: readonly string[], meta: InstanceMetadata): void => {
    if (wantsJson(req.headers.accept)) return sendTreeJson(services, req, res, meta, segs.slice(1));
    if (services.config().cloudstack.enabled && meta.data.publicKeys.length > 0) {
      const plain = plainPublicKeys(meta.data, req.path);
      if (plain !== null) return sendText(res, plain);
    }
    sendFromTree(services, req, res, meta, meta.ec2, segs.slice(1), false);
  };
}

/** The node at `segs` of the caller's EC2 tree as JSON (Firecracker's MMDS does the same). */
function sendTreeJson(services: Services, req: Asked, res: ServerResponse, meta: InstanceMetadata, segs: readonly string[]): void {
  const node = lookup(meta.ec2, segs);
  if (node === undefined) throw new MdsError('NOT_FOUND', `Resource not found: ${req.path}`);
  sendJson(res, treeJson(node, () => services.userdata.render(meta.data, reportUrl(req, services.config().mdserver.listenAddress6))));
}
