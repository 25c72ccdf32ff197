// POST /instance-upload: the libvirt hook (or an admin) registers a domain from its XML.

import type { Request, Response } from 'express';
import type { IncomingMessage } from 'node:http';
import { isMdsError, MdsError } from '../../errors.js';
import { uploadNote } from '../../metadata/isolation.js';
import type { Services } from '../../services.js';
import { sendText } from '../respond.js';

export const UPLOAD_PATH = '/instance-upload';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads the whole body up to `limit` bytes, whatever its content type (curl -d sends a form type). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(new MdsError('BODY_TOO_LARGE', `Request body too large: the limit is ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new MdsError('BODY_TOO_LARGE', `Request body too large: the limit is ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * Registers the domain in the body; the route table allows POST from the host only. Both apps
 * mount it, so uploads and their failures are counted here, by error code.
 */
export function uploadHandler(services: Services) {
  const upload = register(services);
  return async (req: Request, res: Response): Promise<void> => {
    try {
      services.metrics.uploaded(await upload(req, res));
    } catch (e) {
      services.metrics.uploadFailed(isMdsError(e) ? e.code : 'INTERNAL');
      throw e;
    }
  };
}

/** Answers the upload; resolves to whether the domain was new. */
function register(services: Services) {
  return async (req: Request, res: Response): Promise<boolean> => {
    const body = await readBody(req, services.config().mdserver.uploadMaxBytes);
    let xml: string;
    try {
      xml = utf8.decode(body);
    } catch {
      throw new MdsError('BAD_DOMAIN_XML', 'The body is not UTF-8 text');
    }
    const { instance: i, created } = await services.registry.register(xml);
    // The hook uploads a domain as it starts: its provisioning status starts over.
    services.provisioning.uploaded(i.uuid);
    const note = uploadNote(i, services.config().mdserver);
    // ipv6= only when IPv6 is served: an md_server configuration's replies stay as they were.
    const v6 = i.ipv6 ? ` ipv6=${i.ipv6}` : '';
    sendText(res, `${created ? 'registered' : 'updated'} ${i.name} mac=${i.mac} ipv4=${i.ipv4 ?? ''}${v6}\n${note ? `${note}\n` : ''}`, created ? 201 : 200);
    return created;
  };
}
