// Answering from a per-instance metadata tree (EC2, OpenStack, NoCloud): a listing, a value, or
// the rendered user-data.

import type { ServerResponse } from 'node:http';
import type { Asked } from '../asked.js';
import { MdsError } from '../../errors.js';
import type { InstanceMetadata } from '../../metadata/service.js';
import { vendorDataFor } from '../../metadata/vendorData.js';
import { isDeferred, isDir, listDir, lookup, type Dir } from '../../metadata/tree.js';
import type { Services } from '../../services.js';
import { JSON_TYPE, sendBody, sendText } from '../respond.js';
import { EVENTS_PATH } from './cloudInitEvents.js';

/**
 * Where the calling VM posts its cloud-init events: the address and port it reached mdserver on
 * (the socket's own end, not the Host header), as a URL. A link-local address would need the
 * guest's own interface name as its zone, which only the guest knows; a VM that asked there has
 * its DHCPv6 address by the time it reports, so it is sent to `listen_address6` instead.
 */
export function reportUrl(req: Asked, listenAddress6: string): string {
  let host = req.socket.localAddress ?? '';
  if (host.startsWith('::ffff:')) host = host.slice(7);
  if (/^fe80:/i.test(host)) host = listenAddress6;
  if (host.includes(':')) host = `[${host}]`;
  const port = req.socket.localPort;
  return `http://${host}${port === undefined || port === 80 ? '' : `:${port}`}${EVENTS_PATH}`;
}

/**
 * Answers with the node at `segs` under `root`. With `jsonByName`, a leaf named `*.json` goes out
 * as application/json (OpenStack's files); otherwise every value is text/plain, as on EC2, where a
 * tag may well be called `x.json`.
 */
export function sendFromTree(
  services: Services, req: Asked, res: ServerResponse, meta: InstanceMetadata, root: Dir, segs: readonly string[], jsonByName: boolean,
): void {
  const node = lookup(root, segs);
  if (node === undefined) throw new MdsError('NOT_FOUND', `Resource not found: ${req.path}`);
  if (isDeferred(node)) {
    if (node.deferred === 'user-data') return sendText(res, services.userdata.render(meta.data, reportUrl(req, services.config().mdserver.listenAddress6)));
    const text = vendorDataFor(node, reportUrl(req, services.config().mdserver.listenAddress6));
    if (node.format === 'openstack') sendBody(res, text, JSON_TYPE);
    else sendText(res, text);
    return;
  }
  if (isDir(node)) return sendText(res, listDir(node));
  if (jsonByName && segs.length > 0 && (segs[segs.length - 1] as string).endsWith('.json')) {
    sendBody(res, node, JSON_TYPE);
    return;
  }
  sendText(res, node);
}
