// The Express application, built from injected services: one middleware (access log, rate limit,
// dispatch through the route table) and one error handler.

import express, { type NextFunction, type Request, type Response } from 'express';
import type { Config } from '../config/index.js';
import { MdsError } from '../errors.js';
import { isLogged, moduleLogger } from '../log.js';
import type { Services } from '../services.js';
import { wantsJson } from './accept.js';
import { clientAddress, isHost } from './client.js';
import { errorHandler, HttpError } from './errorReply.js';
import { countError, countRequest } from './observe.js';
import { checkMetadataHeader, checkUploadToken, refuseForwarded } from './guards.js';
import { collapseSlashes, splitPath } from './path.js';
import type { RefusalLog } from './refusalLog.js';
import { sendJson, sendText } from './respond.js';
import { allowHeader, allows, RouteTable } from './router.js';
import { publicRoutes, type Route } from './routeTable.js';
import { checkToken } from './routes/ec2.js';

const log = moduleLogger('http');

/** What an exact-path route gets for `segs`: those routes never read them. */
const NO_SEGMENTS: readonly string[] = Object.freeze([]);

/**
 * `refusals` limits the refusal lines per client; the composition root shares it with the
 * connection guard, so that a client's refused connections and requests count as one.
 */
export function createApp(services: Services, refusals: RefusalLog): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // Hashing every body for an ETag costs time on the hot path and no client uses it.
  app.set('etag', false);
  app.set('trust proxy', false);

  const dispatch = dispatcher(services, new RouteTable<Config, Route>(publicRoutes(services)));
  // One middleware does everything: each extra Express layer is a measurable part of a metadata
  // request (doc/benchmarks.md).
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (isLogged('debug')) accessLog(req, res);
    if (services.config().mdserver.metrics) countRequest(services, req, res);
    if (services.limiter.enabled) rateLimit(services, req);
    dispatch(req, res, next);
  });
  app.use(errorHandler({
    log,
    fields: (req) => ({ client: clientAddress(req) }),
    throttle: { refusals, client: clientAddress },
    observe: (reply) => countError(services.metrics, reply),
    // A client that asked for JSON gets its error as JSON too, with the same status.
    send: (res, reply) => wantsJson(res.req.headers.accept)
      ? sendJson(res, { error: reply.error.code, message: reply.error.message }, reply.status)
      : sendText(res, reply.error.message, reply.status),
  }));
  return app;
}

/**
 * The access log is per-request detail, so debug (info is for lifecycle and state changes): at
 * info it cost a quarter of a metadata request's time in `npm run bench`. Refusals are still
 * logged at warn by the error handler, at most once a minute per client.
 */
function accessLog(req: Request, res: Response): void {
  const started = performance.now();
  res.on('finish', () => {
    log.debug(`${clientAddress(req)} ${req.method} ${req.originalUrl.slice(0, 512)} ${res.statusCode}`, {
      ms: Math.round((performance.now() - started) * 100) / 100,
    });
  });
}

/**
 * Rate limiting comes before any work: a flooding VM costs one map lookup per request. The host
 * itself (uploads, admin checks) is never limited.
 */
function rateLimit(services: Services, req: Request): void {
  const client = clientAddress(req);
  if (isHost(client, services.config())) return;
  const verdict = services.limiter.take(client);
  if (verdict.allowed) return;
  if (verdict.firstOfRun) log.warn('rate limiting a client', { client });
  throw new HttpError('TOO_MANY_REQUESTS', 'Too many requests: slow down', { 'Retry-After': String(verdict.retryAfter) });
}

/**
 * Finds the route and makes the checks it declares, in this order: the method (HEAD wherever
 * GET); for the host's routes, the caller; proxies' headers; the upload token; the IMDSv2 token
 * or the `Metadata` header; then, for instance routes, the caller (a registered instance). The
 * cheap header checks come before the instance lookup, so a refused request costs no database
 * read, and an upload is refused before its body is read.
 */
function dispatcher(services: Services, table: RouteTable<Config, Route>) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const cfg = services.config();
    const path = collapseSlashes(req.path);
    let segs = NO_SEGMENTS;
    let route = table.byPath(path, cfg);
    if (route === undefined) {
      segs = splitPath(path);
      route = table.byPrefix(segs[0], cfg);
    }
    if (route === undefined) throw new MdsError('NOT_FOUND', `Resource not found: ${path}`);
    if (!allows(route.methods, req.method)) {
      const message = route.notAllowed ?? `Method not allowed: ${req.method}`;
      throw new HttpError('METHOD_NOT_ALLOWED', message, { Allow: allowHeader(route.methods) });
    }
    const client = clientAddress(req);
    if (route.who === 'host' && !isHost(client, cfg)) throw new MdsError('UNAUTHORISED_CLIENT', `Unauthorised client: ${client}`);
    if (route.who !== 'anyone' || route.refuseForwarded) refuseForwarded(req);
    if (route.uploadToken) checkUploadToken(cfg, req);
    if (route.imdsToken) checkToken(services, req, client);
    if (route.metadataHeader) checkMetadataHeader(cfg, req);
    if (route.who !== 'instance') {
      route.handler(req, res, segs, client)?.catch(next);
      return;
    }
    const serve = (): void => {
      const found = services.metadata.forCaller(client);
      if (req.method !== 'POST') services.provisioning.sawRequest(found.data.instance.uuid, segs);
      route.handler(req, res, segs, found)?.catch(next);
    };
    // An IPv6 caller the neighbour table may not know yet waits for a read of it (off the event
    // loop, shared with every other such caller); everyone else is answered at once.
    const settled = services.metadata.settle(client);
    if (settled === undefined) serve();
    else settled.then(serve).catch(next);
  };
}
