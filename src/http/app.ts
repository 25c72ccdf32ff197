// The Express application, built from injected services: routes, access log, one error handler.

import express, { type NextFunction, type Request, type Response } from 'express';
import { MdsError } from '../errors.js';
import { health } from '../health.js';
import { isLogged, moduleLogger } from '../log.js';
import type { Services } from '../services.js';
import { clientAddress, isHost } from './client.js';
import { errorHandler, HttpError } from './errorReply.js';
import { sendText } from './respond.js';
import { ec2Handler } from './routes/ec2.js';
import { nocloudHandler } from './routes/nocloud.js';
import { openstackHandler } from './routes/openstack.js';
import { serviceHandler } from './routes/service.js';
import { TOKEN_PATH, tokenHandler } from './routes/token.js';
import { UPLOAD_PATH, uploadHandler } from './routes/upload.js';

const log = moduleLogger('http');

/** Host-only: what is degraded (dnsmasq files or process, logfile). */
export const HEALTH_PATH = '/health';

export function createApp(ctx: Services): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // Hashing every body for an ETag costs time on the hot path and no client uses it.
  app.set('etag', false);
  app.set('trust proxy', false);

  const token = tokenHandler(ctx);
  const upload = uploadHandler(ctx);
  const service = serviceHandler(ctx);
  const ec2 = ec2Handler(ctx);
  const openstack = openstackHandler(ctx);
  const nocloud = nocloudHandler(ctx);

  // The access log is per-request detail, so debug (info is for lifecycle and state changes): at
  // info it cost a quarter of a metadata request's time in `npm run bench`. Refusals are still
  // logged at warn by the error handler below.
  const accessLog = (req: Request, res: Response): void => {
    const started = performance.now();
    res.on('finish', () => {
      log.debug(`${clientAddress(req)} ${req.method} ${req.originalUrl.slice(0, 512)} ${res.statusCode}`, {
        ms: Math.round((performance.now() - started) * 100) / 100,
      });
    });
  };

  // Rate limiting comes before any work: a flooding VM costs one map lookup per request. The
  // host itself (uploads, admin checks) is never limited.
  const rateLimit = (req: Request): void => {
    const client = clientAddress(req);
    if (isHost(client, ctx.config())) return;
    const verdict = ctx.limiter.take(client);
    if (verdict.allowed) return;
    if (verdict.firstOfRun) log.warn('rate limiting a client', { client });
    throw new HttpError('TOO_MANY_REQUESTS', 'Too many requests: slow down', { 'Retry-After': String(verdict.retryAfter) });
  };

  // One middleware does everything: each extra Express layer is a measurable part of a metadata
  // request (doc/benchmarks.md).
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (isLogged('debug')) accessLog(req, res);
    if (ctx.limiter.enabled) rateLimit(req);
    // Doubled slashes are collapsed for dispatch: clients build URLs by joining a base that may
    // end in `/` with a path that starts with one (the AWS SDK's token PUT among them).
    const raw = req.path;
    const p = raw.includes('//') ? raw.replace(/\/{2,}/g, '/') : raw;
    if (p === TOKEN_PATH) return token(req, res);
    if (p === UPLOAD_PATH) {
      upload(req, res).catch(next);
      return;
    }
    if (p === HEALTH_PATH) {
      const client = clientAddress(req);
      if (!isHost(client, ctx.config())) throw new MdsError('UNAUTHORISED_CLIENT', `Unauthorised client: ${client}`);
      res.status(200).json(health(ctx));
      return;
    }
    if (p === '/service' || p.startsWith('/service/')) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        throw new HttpError('METHOD_NOT_ALLOWED', `Method not allowed: ${req.method}`, { Allow: 'GET, HEAD' });
      }
      return service(req, res);
    }
    // Cheap prefix tests first: the EC2 paths are nearly all of the traffic.
    if (p.startsWith('/openstack') && openstack(req, res)) return;
    if (p.startsWith('/nocloud') && nocloud(req, res)) return;
    if (ec2(req, res)) return;
    throw new MdsError('NOT_FOUND', `Resource not found: ${p}`);
  });

  app.use(errorHandler({
    log,
    fields: (req) => ({ client: clientAddress(req) }),
    send: (res, reply) => sendText(res, reply.error.message, reply.status),
  }));
  return app;
}
