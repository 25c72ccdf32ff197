// /service/: md_server's description of this metadata service.

import type { Request, Response } from 'express';
import { dumpConfig } from '../../config/index.js';
import { MdsError } from '../../errors.js';
import type { Services } from '../../services.js';
import { sendText } from '../respond.js';

export const CONFIGURATION_PATH = '/service/configuration';

const KEYS = ['name', 'type', 'version', 'location', 'ec2_versions'];

/** `/service` and the keys under it, for anyone. */
export function serviceHandler(services: Services) {
  return (req: Request, res: Response, segs: readonly string[]): void => {
    const s = services.config().service;
    switch (segs.slice(1).join('/')) {
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
      default:
        throw new MdsError('NOT_FOUND', `Resource not found: ${req.path}`);
    }
  };
}

/** `/service/configuration`: the configuration in force, secrets hidden; a route for the host only. */
export function configurationHandler(services: Services) {
  return (_req: Request, res: Response): void => {
    sendText(res, dumpConfig(services.config()).join('\n'));
  };
}
