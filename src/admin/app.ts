// The admin API, served only on the host-only unix socket: list, show, register, rekey and delete
// instances, reload the configuration, report status. Answers are JSON; errors are
// `{"error": code, "message": ...}` with the status of the error's code. `POST /instance-upload`
// is the metadata port's upload, text replies included, for the hook.

import express, { type NextFunction, type Request, type Response } from 'express';
import type { Config } from '../config/index.js';
import { MdsError } from '../errors.js';
import { health } from '../health.js';
import { errorHandler } from '../http/errorReply.js';
import { sendText } from '../http/respond.js';
import { METRICS_PATH, metricsHandler } from '../http/routes/metrics.js';
import { UPLOAD_PATH, uploadHandler } from '../http/routes/upload.js';
import type { HostNameCollision } from '../instances/hostNames.js';
import { unfilteredSummary } from '../metadata/isolation.js';
import type { Services } from '../services.js';
import { moduleLogger } from '../log.js';
import type { ConnectionCounts } from '../net/connlimit.js';
import type { ReloadReport } from '../reload.js';
import { VERSION } from '../version.js';
import { bootEventJson, instanceJson, type RekeyJson, type StatusReport } from './protocol.js';

const log = moduleLogger('admin');

export interface AdminDeps {
  /** The running services, shared with the metadata app. */
  services: Services;
  reload(): ReloadReport;
  /** The metadata listener as bound. */
  listening: { address: string; port: number };
  startedAt: Date;
  lastReload(): { at: string; ok: boolean } | null;
  /** The metadata listener's open VM connections. */
  connections: ConnectionCounts;
}

export function statusReport(d: AdminDeps): StatusReport {
  const cfg = d.services.config();
  const h = health(d.services);
  return {
    healthy: h.status === 'ok',
    problems: h.problems,
    version: VERSION,
    pid: process.pid,
    startedAt: d.startedAt.toISOString(),
    uptimeSeconds: Math.round((Date.now() - d.startedAt.getTime()) / 1000),
    configFiles: cfg.files,
    listen: d.listening,
    listeners: h.listeners.map(({ label, address, port, bound, error }) => ({ label, address, port, bound, error })),
    ipv6: h.ipv6,
    instances: h.instances,
    network: `${cfg.dnsmasq.netAddress}/${cfg.dnsmasq.netPrefix}`,
    lastReload: d.lastReload(),
    dnsmasq: { ...h.dnsmasq, files: d.services.dnsmasq.getStatus() },
    logfile: h.logfile,
    connections: { open: d.connections.count(), clients: d.connections.clients },
    // Not problems of the server (it stays healthy), but what the admin should know about.
    warnings: [
      unfilteredSummary(d.services.registry.list(), cfg.mdserver), openUploads(cfg), ...sharedHostNames(d.services.registry.hostNameCollisions()),
    ].filter((w): w is string => w !== null),
  };
}

/** One warning per host name several instances share (a database from before such uploads were refused). */
function sharedHostNames(collisions: readonly HostNameCollision[]): string[] {
  return collisions.map((c) => `instances share the host name ${c.hostName}: ${c.kept.name} keeps it in DNS; `
    + `${c.renamed.map((r) => `${r.name} is listed as ${r.listedAs}`).join(', ')} (rename or delete them)`);
}

/** A warning while uploads over HTTP are open to every local user (an md_server configuration). */
function openUploads(cfg: Config): string | null {
  if (cfg.mdserver.uploadToken !== null) return null;
  return 'uploads over HTTP are open to every local user, who could rewrite any VM\'s record: '
    + 'set [mdserver] upload_token_file (doc/setup.md, "Registering a domain by hand, and locking uploads")';
}

function name(req: Request): string {
  const n = req.params['name'];
  if (typeof n !== 'string' || n === '') throw new MdsError('BAD_REQUEST', 'an instance name is required');
  return n;
}

export function createAdminApp(d: AdminDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((req: Request, res: Response, next: NextFunction) => {
    res.on('finish', () => log.info(`admin ${req.method} ${req.originalUrl.slice(0, 512)} ${res.statusCode}`));
    next();
  });

  app.get('/status', (_req, res) => {
    res.json(statusReport(d));
  });

  app.get(METRICS_PATH, metricsHandler(d.services.metrics, () => d.services.config().mdserver.metrics));

  app.get('/instances', (_req, res) => {
    const p = d.services.provisioning;
    res.json(d.services.registry.list().map((i) => instanceJson(i, d.services.config().mdserver, p.status(i.uuid))));
  });

  app.get('/instances/:name', (req, res) => {
    const i = d.services.registry.get(name(req));
    if (!i) throw new MdsError('NOT_FOUND', `no instance named ${JSON.stringify(name(req))}`);
    const p = d.services.provisioning;
    res.json({ ...instanceJson(i, d.services.config().mdserver, p.status(i.uuid), d.services.passwords.pending(i.name)), events: p.events(i.uuid).map(bootEventJson) });
  });

  // `mdserver instances password`: the body is the password itself, so it is in no URL and no
  // log line; the answer says only that it is pending.
  app.post('/instances/:name/password', express.text({ type: () => true, limit: 4096 }), async (req, res) => {
    if (typeof req.body !== 'string') throw new MdsError('BAD_REQUEST', 'expected the password as the request body');
    await d.services.passwords.set(name(req), req.body);
    const i = d.services.registry.get(name(req));
    if (!i) throw new MdsError('NOT_FOUND', `no instance named ${JSON.stringify(name(req))}`);
    res.json(instanceJson(i, d.services.config().mdserver, d.services.provisioning.status(i.uuid), d.services.passwords.pending(i.name)));
  });

  app.delete('/instances/:name', async (req, res) => {
    const gone = await d.services.registry.delete(name(req));
    if (!gone) throw new MdsError('NOT_FOUND', `no instance named ${JSON.stringify(name(req))}`);
    res.json(instanceJson(gone, d.services.config().mdserver));
  });

  // `mdserver instances rekey`: the domain was defined again under a new uuid (the ec2 recipe);
  // its record follows, keeping the address and the instance id.
  app.post('/instances/:name/rekey', express.json({ limit: 4096 }), async (req, res) => {
    const uuid = (req.body as { uuid?: unknown } | undefined)?.uuid;
    if (typeof uuid !== 'string') throw new MdsError('BAD_REQUEST', 'expected {"uuid": "<the new uuid>"}');
    const r = await d.services.registry.rekey(name(req), uuid);
    if (!r) throw new MdsError('NOT_FOUND', `no instance named ${JSON.stringify(name(req))}`);
    const reply: RekeyJson = { previousUuid: r.previousUuid, instance: instanceJson(r.instance, d.services.config().mdserver) };
    res.json(reply);
  });

  // `mdserver sync` registers domains here rather than on the metadata port, which may not be
  // reachable from the host's own shell (it listens on the VM network's address).
  // The body limit is read per request, so a reload that changes upload_max_bytes applies here too.
  let parser: { limit: number; parse: express.RequestHandler } | null = null;
  const body: express.RequestHandler = (req, res, next) => {
    const limit = d.services.config().mdserver.uploadMaxBytes;
    if (parser?.limit !== limit) parser = { limit, parse: express.text({ type: () => true, limit }) };
    parser.parse(req, res, next);
  };
  app.post('/instances', body, async (req, res) => {
    if (typeof req.body !== 'string') throw new MdsError('BAD_DOMAIN_XML', 'expected a libvirt domain XML document');
    const r = await d.services.registry.register(req.body);
    res.status(r.created ? 201 : 200).json({ created: r.created, changed: r.changed, instance: instanceJson(r.instance, d.services.config().mdserver) });
  });

  // The hook's upload, as on the metadata port and with the same text replies, for when that port
  // is busy with VMs or not reachable from the host's shell; the socket's permissions (root and
  // the mdserver group) decide who may use it, so it needs no upload token.
  app.post(UPLOAD_PATH, uploadHandler(d.services));

  app.post('/reload', (_req, res) => {
    const report = d.reload();
    res.status(report.ok ? 200 : 422).json(report);
  });

  app.use((req: Request) => {
    throw new MdsError('NOT_FOUND', `no admin resource ${req.method} ${req.path}`);
  });

  app.use(errorHandler({
    log,
    send: (res, reply) => {
      if (res.req.path === UPLOAD_PATH) sendText(res, reply.error.message, reply.status);
      else res.json({ error: reply.error.code, message: reply.error.message });
    },
  }));
  return app;
}
