// POST /instance-upload: the libvirt hook (or an admin) registers a domain from its XML.

import type { Request, Response } from 'express';
import { MdsError } from '../../errors.js';
import { uploadNote } from '../../metadata/isolation.js';
import type { Services } from '../../services.js';
import { clientAddress, isHost } from '../client.js';
import { sendText } from '../respond.js';

export const UPLOAD_PATH = '/instance-upload';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads the whole body up to `limit` bytes, whatever its content type (curl -d sends a form type). */
function readBody(req: Request, limit: number): Promise<Buffer> {
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

export function uploadHandler(ctx: Services) {
  return async (req: Request, res: Response): Promise<void> => {
    const cfg = ctx.config();
    const client = clientAddress(req);
    if (req.method !== 'POST') {
      throw new MdsError('METHOD_NOT_ALLOWED', 'Method not allowed: use POST', { headers: { Allow: 'POST' } });
    }
    if (!isHost(client, cfg)) throw new MdsError('UNAUTHORISED_CLIENT', `Unauthorised client: ${client}`);
    const body = await readBody(req, cfg.mdserver.uploadMaxBytes);
    let xml: string;
    try {
      xml = utf8.decode(body);
    } catch {
      throw new MdsError('BAD_DOMAIN_XML', 'The body is not UTF-8 text');
    }
    const { instance: i, created } = await ctx.registry.register(xml);
    const note = uploadNote(i, ctx.config().mdserver);
    sendText(res, `${created ? 'registered' : 'updated'} ${i.name} mac=${i.mac} ipv4=${i.ipv4 ?? ''}\n${note ? `${note}\n` : ''}`, created ? 201 : 200);
  };
}
