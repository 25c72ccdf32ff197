// The public listener, built from injected services: one middleware (access log, rate limit,
// dispatch through the route table) and one error handler, run by Express or, for the metadata
// requests, straight from Node's request listener.

import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Config } from '../config/index.js';
import { describe, MdsError } from '../errors.js';
import { isLogged, moduleLogger } from '../log.js';
import type { Services } from '../services.js';
import { wantsJson } from './accept.js';
import { clientAddress, isHost } from './client.js';
import { answerError, HttpError, type ErrorHandlerOptions } from './errorReply.js';
import { asked, type Asked } from './asked.js';
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
 * The public listener: the Express app, and before it the metadata requests (a GET or HEAD of an
 * instance's path, with no query) answered by the same middleware on Node's own request and
 * response. Those are nearly every request a host serves, and Express's routing and its additions
 * to each request cost twice the rest of such a request's work (doc/benchmarks.md). Everything
 * else (uploads, tokens, the host's routes, a query string) goes through Express.
 *
 * `refusals` limits the refusal lines per client; the composition root shares it with the
 * connection guard, so that a client's refused connections and requests count as one.
 */
export function createListener(services: Services, refusals: RefusalLog): RequestListener {
  const table = new RouteTable<Config, Route>(publicRoutes(services));
  const dispatch = dispatcher(services, table);
  const answer: Answer = (req, res, next, found) => {
    if (isLogged('debug')) accessLog(req, res);
    if (services.config().mdserver.metrics) countRequest(services, req, res);
    if (services.limiter.enabled) rateLimit(services, req);
    dispatch(req, res, next, found);
  };
  const replies: ErrorHandlerOptions<Asked, ServerResponse> = {
    log,
    fields: (req) => ({ client: clientAddress(req) }),
    throttle: { refusals, client: clientAddress },
    observe: (reply) => countError(services.metrics, reply),
    // A client that asked for JSON gets its error as JSON too, with the same status.
    send: (res, reply) => wantsJson(res.req.headers.accept)
      ? sendJson(res, { error: reply.error.code, message: reply.error.message }, reply.status)
      : sendText(res, reply.error.message, reply.status),
  };
  const app = createApp(answer, replies);
  return (req, res) => {
    const found = metadataRoute(req, table, services.config());
    if (found === null) return void app(req, res);
    const q = asked(req, req.url as string);
    const fail: Next = (err) => {
      try {
        answerError(replies, err, q, res);
      } catch (e) {
        // Express would catch this too: no request may take the process down with it.
        log.error('could not answer an error; closing the connection', { error: describe(e) });
        res.destroy();
      }
    };
    try {
      answer(q, res, fail, found);
    } catch (err) {
      fail(err);
    }
  };
}

type Next = (err?: unknown) => void;
/** A route and the path's decoded segments (none when the route was found by the exact path). */
type Found = { readonly route: Route; readonly segs: readonly string[] };
/** Answers a request; `found` is its route when the caller looked it up already. */
type Answer = (req: Asked, res: ServerResponse, next: Next, found?: Found) => void;

function createApp(answer: Answer, replies: ErrorHandlerOptions<Asked, ServerResponse>): Express {
  const app = express();
  app.disable('x-powered-by');
  // Hashing every body for an ETag costs time on the hot path and no client uses it.
  app.set('etag', false);
  app.set('trust proxy', false);
  // One middleware does everything: each extra Express layer is a measurable part of a request.
  app.use((req: Request, res: Response, next: NextFunction) => answer(req, res, next));
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => answerError(replies, err, req, res));
  return app;
}

/**
 * The route of a request that is answered before Express, or null: a GET or HEAD of a path with
 * no query (its URL is then what Express's `req.path` would be) that an instance's route answers.
 * A path with a bad escape goes to Express too, which refuses it.
 */
function metadataRoute(req: IncomingMessage, table: RouteTable<Config, Route>, cfg: Config): Found | null {
  const url = req.url ?? '';
  if ((req.method !== 'GET' && req.method !== 'HEAD') || !url.startsWith('/') || url.includes('?') || url.includes('#')) return null;
  try {
    const found = routeOf(table, collapseSlashes(url), cfg);
    return found?.route.who === 'instance' ? found : null;
  } catch {
    return null;
  }
}

/** The route for a request's path, or NOT_FOUND. */
function routeOrRefusal(table: RouteTable<Config, Route>, raw: string, cfg: Config): Found {
  const path = collapseSlashes(raw);
  const found = routeOf(table, path, cfg);
  if (found === undefined) throw new MdsError('NOT_FOUND', `Resource not found: ${path}`);
  return found;
}

/** The route for a collapsed path, and its decoded segments when found by its first one. */
function routeOf(table: RouteTable<Config, Route>, path: string, cfg: Config): Found | undefined {
  const exact = table.byPath(path, cfg);
  if (exact !== undefined) return { route: exact, segs: NO_SEGMENTS };
  const segs = splitPath(path);
  const route = table.byPrefix(segs[0], cfg);
  return route === undefined ? undefined : { route, segs };
}

/**
 * The access log is per-request detail, so debug (info is for lifecycle and state changes): at
 * info it cost a quarter of a metadata request's time in `npm run bench`. Refusals are still
 * logged at warn by the error handler, at most once a minute per client.
 */
function accessLog(req: Asked, res: ServerResponse): void {
  const started = performance.now();
  res.on('finish', () => {
    log.debug(`${clientAddress(req)} ${req.method ?? ''} ${(req.url ?? '').slice(0, 512)} ${res.statusCode}`, {
      ms: Math.round((performance.now() - started) * 100) / 100,
    });
  });
}

/**
 * Rate limiting comes before any work: a flooding VM costs one map lookup per request. The host
 * itself (uploads, admin checks) is never limited.
 */
function rateLimit(services: Services, req: Asked): void {
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
  return (req: Asked, res: ServerResponse, next: Next, known?: Found): void => {
    const cfg = services.config();
    const { route, segs } = known ?? routeOrRefusal(table, req.path, cfg);
    if (!allows(route.methods, req.method ?? '')) {
      const message = route.notAllowed ?? `Method not allowed: ${req.method ?? ''}`;
      throw new HttpError('METHOD_NOT_ALLOWED', message, { Allow: allowHeader(route.methods) });
    }
    const client = clientAddress(req);
    if (route.who === 'host' && !isHost(client, cfg)) throw new MdsError('UNAUTHORISED_CLIENT', `Unauthorised client: ${client}`);
    if (route.who !== 'anyone' || route.refuseForwarded) refuseForwarded(req);
    if (route.uploadToken) checkUploadToken(cfg, req);
    if (route.imdsToken) checkToken(services, req, client);
    if (route.metadataHeader) checkMetadataHeader(cfg, req);
    if (route.who !== 'instance') {
      // The host's and everyone's routes use Express's additions: only Express hands them requests.
      route.handler(req as Request, res as Response, segs, client)?.catch(next);
      return;
    }
    const serve = (): void => {
      const meta = services.metadata.forCaller(client);
      if (req.method !== 'POST') services.provisioning.sawRequest(meta.data.instance.uuid, segs);
      route.handler(req, res, segs, meta)?.catch(next);
    };
    // An IPv6 caller the neighbour table may not know yet waits for a read of it (off the event
    // loop, shared with every other such caller); everyone else is answered at once.
    const settled = services.metadata.settle(client);
    if (settled === undefined) serve();
    else settled.then(serve).catch(next);
  };
}
