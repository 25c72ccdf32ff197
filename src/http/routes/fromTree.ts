// Answering from a per-instance metadata tree (EC2, OpenStack, NoCloud): a listing, a value, or
// the rendered user-data.

import type { Request, Response } from 'express';
import { MdsError } from '../../errors.js';
import type { ClientView } from '../../metadata/service.js';
import { isDeferred, isDir, listDir, lookup, type Dir } from '../../metadata/tree.js';
import type { Services } from '../../services.js';
import { sendText } from '../respond.js';

/**
 * Answers with the node at `segs` under `root`. With `jsonByName`, a leaf named `*.json` goes out
 * as application/json (OpenStack's files); otherwise every value is text/plain, as on EC2, where a
 * tag may well be called `x.json`.
 */
export function sendFromTree(
  services: Services, req: Request, res: Response, view: ClientView, root: Dir, segs: readonly string[], jsonByName: boolean,
): void {
  const node = lookup(root, segs);
  if (node === undefined) throw new MdsError('NOT_FOUND', `Resource not found: ${req.path}`);
  if (isDeferred(node)) return sendText(res, services.userdata.render(view.data));
  if (isDir(node)) return sendText(res, listDir(node));
  if (jsonByName && segs.length > 0 && (segs[segs.length - 1] as string).endsWith('.json')) {
    res.status(200).type('application/json').send(node);
    return;
  }
  sendText(res, node);
}
