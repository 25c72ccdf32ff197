// Serving one node of a per-instance metadata tree, shared by the OpenStack and NoCloud paths.

import type { Request, Response } from 'express';
import { MdsError } from '../../errors.js';
import type { ClientView } from '../../metadata/service.js';
import { isDeferred, isDir, listDir, lookup, type Dir } from '../../metadata/tree.js';
import type { Services } from '../../services.js';
import { clientAddress } from '../client.js';
import { HttpError } from '../errorReply.js';
import { sendText } from '../respond.js';

export function requireRead(req: Request): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    throw new HttpError('METHOD_NOT_ALLOWED', `Method not allowed: ${req.method}`, { Allow: 'GET, HEAD' });
  }
}

/** The caller's view, with the same checks as the EC2 paths (unknown address, `verify_mac`). */
export function callerView(ctx: Services, req: Request): ClientView {
  return ctx.metadata.caller(clientAddress(req));
}

/** Answers with the node at `segs` under `root`: a listing, a value or the rendered user-data. */
export function sendFromTree(ctx: Services, req: Request, res: Response, view: ClientView, root: Dir, segs: readonly string[]): void {
  const node = lookup(root, segs);
  if (node === undefined) throw new MdsError('NOT_FOUND', `Resource not found: ${req.path}`);
  if (isDeferred(node)) return sendText(res, ctx.userdata.render(view.data));
  if (isDir(node)) return sendText(res, listDir(node));
  const last = segs.filter((s) => s !== '').pop() ?? '';
  if (last.endsWith('.json')) {
    res.status(200).type('application/json').send(node);
    return;
  }
  sendText(res, node);
}
