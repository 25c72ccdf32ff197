// CloudStack's password server (port 8080 of the virtual router): `GET /` with the header
// `DomU_Request: send_my_password` answers the calling VM's one-time password, and
// `DomU_Request: saved_password` acknowledges it. The caller is found by the same rules as on the
// metadata port: source address, `verify_mac`, `require_filter`, the rate limit, no proxy headers.

import express, { type NextFunction, type Request, type Response } from 'express';
import { MdsError } from '../errors.js';
import { moduleLogger } from '../log.js';
import type { Services } from '../services.js';
import { clientAddress, isHost } from './client.js';
import { errorHandler, HttpError } from './errorReply.js';
import { refuseForwarded } from './guards.js';
import type { RefusalLog } from './refusalLog.js';
import { sendText } from './respond.js';

const log = moduleLogger('password-server');

/** The request header of the protocol (header names are case-insensitive; Node gives them lower case). */
const REQUEST_HEADER = 'domu_request';
/** CloudStack's answer when no password waits, and to an acknowledgement. */
export const SAVED = 'saved_password';
/** CloudStack's answer to a request it does not know. */
export const BAD_REQUEST = 'bad_request';

/**
 * The value of `DomU_Request`, or null when it is missing or sent more than once: Node joins
 * repeated custom headers with ", ", and no such joined value is a request of the protocol.
 */
function requestOf(req: Request): string | null {
  const v = req.headers[REQUEST_HEADER];
  return typeof v === 'string' ? v.trim() : null;
}

async function answer(services: Services, req: Request, res: Response): Promise<void> {
  const client = clientAddress(req);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    throw new HttpError('METHOD_NOT_ALLOWED', `Method not allowed: ${req.method}`, { Allow: 'GET, HEAD' });
  }
  if (req.path !== '/') throw new MdsError('NOT_FOUND', `Resource not found: ${req.path.slice(0, 256)}`);
  refuseForwarded(req);
  const what = requestOf(req);
  if (what !== 'send_my_password' && what !== SAVED) {
    log.debug('unknown password request', { client, request: what === null ? 'none' : what.slice(0, 64) });
    return sendText(res, BAD_REQUEST, 400);
  }
  await services.metadata.settle(client);
  const name = services.metadata.forCaller(client).data.instance.name;
  if (what === SAVED) {
    await services.passwords.acknowledge(name);
    return sendText(res, SAVED);
  }
  sendText(res, services.passwords.fetch(name) ?? SAVED);
}

export function createPasswordApp(services: Services, refusals: RefusalLog): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', false);
  app.use((req: Request, res: Response, next: NextFunction) => {
    const client = clientAddress(req);
    if (services.limiter.enabled && !isHost(client, services.config())) {
      const verdict = services.limiter.take(client);
      if (!verdict.allowed) {
        if (verdict.firstOfRun) log.warn('rate limiting a client', { client });
        throw new HttpError('TOO_MANY_REQUESTS', 'Too many requests: slow down', { 'Retry-After': String(verdict.retryAfter) });
      }
    }
    answer(services, req, res).catch(next);
  });
  app.use(errorHandler({
    log,
    fields: (req) => ({ client: clientAddress(req) }),
    throttle: { refusals, client: clientAddress },
    send: (res, reply) => sendText(res, reply.error.message, reply.status),
  }));
  return app;
}
