// /service/: md_server's description of this metadata service.

import type { Request, Response } from 'express';
import { dumpConfig } from '../../config/index.js';
import { MdsError } from '../../errors.js';
import type { Services } from '../../services.js';
import { clientAddress, isHost } from '../client.js';
import { sendText } from '../respond.js';

const KEYS = ['name', 'type', 'version', 'location', 'ec2_versions'];

export function serviceHandler(ctx: Services) {
  return (req: Request, res: Response): void => {
    const cfg = ctx.config();
    const s = cfg.service;
    const key = req.path.replace(/\/{2,}/g, '/').slice('/service'.length).replace(/^\/+|\/+$/g, '');
    switch (key) {
      case '':
        return sendText(res, KEYS.join('\n'));
      case 'name':
        return sendText(res, s.name);
      case 'type':
        return sendText(res, s.type);
      case 'location':
        return sendText(res, s.location);
      case 'version':
        return sendText(res, `${s.version} (${s.releaseDate})`);
      case 'ec2_versions':
        return sendText(res, s.ec2Versions.join('\n'));
      case 'configuration': {
        const client = clientAddress(req);
        if (!isHost(client, cfg)) throw new MdsError('UNAUTHORISED_CLIENT', `Unauthorised client: ${client}`);
        return sendText(res, dumpConfig(cfg).join('\n'));
      }
      default:
        throw new MdsError('NOT_FOUND', `Resource not found: ${req.path}`);
    }
  };
}
