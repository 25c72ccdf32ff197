// /health: what is degraded (dnsmasq files or process, logfile); a route for the host only.

import type { Request, Response } from 'express';
import { health } from '../../health.js';
import type { Services } from '../../services.js';

export const HEALTH_PATH = '/health';

export function healthHandler(services: Services) {
  return (_req: Request, res: Response): void => {
    res.status(200).json(health(services));
  };
}
