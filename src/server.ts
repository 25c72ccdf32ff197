// Composition root: configuration -> logging -> store -> dnsmasq files -> services -> HTTP.
// Only this module creates the long-lived objects; everything else receives them.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAdminApp } from './admin/app.js';
import { listenAdmin, type AdminServer } from './admin/server.js';
import { loadConfig, type Config } from './config/index.js';
import { DnsmasqFiles } from './dnsmasq/files.js';
import { createApp } from './http/app.js';
import { guardConnections, openFileLimit } from './http/connections.js';
import { RefusalLog } from './http/refusalLog.js';
import { Registry } from './instances/registry.js';
import { configureLogging, moduleLogger } from './log.js';
import { MetadataService } from './metadata/service.js';
import { TokenIssuer } from './metadata/token.js';
import { RateLimiter } from './net/ratelimit.js';
import { loadForReload, type ReloadReport } from './reload.js';
import type { Services } from './services.js';
import { openConfiguredStore } from './store/open.js';
import type { Store } from './store/store.js';
import { UserdataRenderer } from './userdata/renderer.js';
import { VERSION } from './version.js';

const log = moduleLogger('server');

/** The checkout or package root (dist/src/server.js -> ../..). */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILTIN_TEMPLATE = path.join(PACKAGE_ROOT, 'templates', 'builtin.yaml');

export interface Running {
  readonly configFile: string;
  config(): Config;
  readonly store: Store;
  readonly services: Services;
  readonly server: http.Server;
  /** The address and port actually bound. */
  readonly address: { address: string; port: number };
  /** The admin socket's path, or null when it is disabled. */
  readonly adminSocket: string | null;
  /**
   * Re-reads the configuration file and, when it is valid, puts it in force everywhere and
   * rewrites the dnsmasq files; when it is not, keeps the current one. Synchronous, so each
   * request is answered wholly under the old or wholly under the new configuration.
   */
  reload(): ReloadReport;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Skip configuring winston from the file (tests keep their own logging). */
  keepLogging?: boolean;
}

/**
 * The metadata listener's timeouts, short because every caller but the host is a VM, and a VM
 * that opens connections and sends nothing must not hold them long: its request headers must be
 * in within 5 s of connecting (checked every second; Node's default check runs every 30 s), an
 * idle keep-alive connection is closed after 2 s (cloud-init opens one connection per request
 * anyway), and a whole request (an upload's body included) must be in within 15 s. The host's
 * own path, the admin socket, keeps longer ones (admin/server.ts).
 */
const LISTENER_TIMEOUTS: http.ServerOptions = {
  headersTimeout: 5000,
  keepAliveTimeout: 2000,
  requestTimeout: 15000,
  connectionsCheckingInterval: 1000,
};

/** Builds every service over one store; `config` is read by each of them when it needs it. */
function buildServices(config: () => Config, store: Store): Services {
  let registry: Registry | null = null;
  const dnsmasq = new DnsmasqFiles(config, () => registry?.hostEntries() ?? []);
  registry = new Registry(config, store, dnsmasq);
  // Another host's uploads and deletions change this host's dnsmasq files too.
  store.onExternalChange?.(() => dnsmasq.scheduleWrite());
  return {
    config,
    metadata: new MetadataService(config, store),
    registry,
    userdata: new UserdataRenderer(config, fs.readFileSync(BUILTIN_TEMPLATE, 'utf8'), store),
    tokens: new TokenIssuer(),
    dnsmasq,
    limiter: new RateLimiter(() => config().mdserver),
  };
}

function listen(server: http.Server, port: number, address: string): Promise<{ address: string; port: number }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      const a = server.address() as { address: string; port: number };
      resolve({ address: a.address, port: a.port });
    });
  });
}

export async function startServer(configFile: string, opts: StartOptions = {}): Promise<Running> {
  const { config: first, warnings } = loadConfig(configFile);
  let cfg = first;
  const config = (): Config => cfg;
  const logging = (c: Config): void => {
    if (!opts.keepLogging) configureLogging({ ...c.loglevels, debug: c.mdserver.debug, logfile: c.mdserver.logfile });
  };
  logging(first);
  for (const w of warnings) log.warn(w);
  log.info('starting mdserver', { version: VERSION, config: cfg.files.join(', ') });
  const store = await openConfiguredStore({ dbFile: cfg.mdserver.dbFile, ...cfg.store });
  try {
    const services = buildServices(config, store);
    /** Puts `next` in force: the one path taken at start and at every reload. */
    const applyConfig = (next: Config): void => {
      if (next !== cfg) logging(next);
      cfg = next;
      store.touchLocation(cfg.service.location, cfg.service.hostname, cfg.service.version);
      // The files are rebuilt from the database every time, so they always match it.
      services.dnsmasq.writeAll();
    };
    applyConfig(first);
    const httpLog = moduleLogger('http');
    const refusals = new RefusalLog(httpLog);
    const server = http.createServer(LISTENER_TIMEOUTS, createApp(services, refusals));
    const connections = guardConnections(server, { config, refusals, log: httpLog, fdLimit: openFileLimit() });
    const bound = await listen(server, cfg.mdserver.port, cfg.mdserver.listenAddress);
    log.info('listening', { address: bound.address, port: bound.port, instances: store.count() });
    const reloader = makeReload(configFile, config, services, applyConfig);
    let admin: AdminServer | null = null;
    const adminSocket = cfg.mdserver.adminSocket;
    if (adminSocket) {
      const app = createAdminApp({ services, reload: reloader.reload, listening: bound, startedAt: new Date(), lastReload: reloader.last, connections });
      admin = await listenAdmin(adminSocket, app).catch((e: unknown) => {
        server.close();
        server.closeAllConnections();
        throw e;
      });
    }
    const close = closer(server, admin, services, store, refusals);
    return { configFile, config, store, services, server, address: bound, adminSocket, reload: reloader.reload, close };
  } catch (e) {
    await Promise.resolve(store.close()).catch(() => undefined);
    throw e;
  }
}

/** `reload` re-reads `configFile` and applies it when valid; `last` says when it last ran. */
function makeReload(configFile: string, config: () => Config, services: Services, apply: (c: Config) => void) {
  let lastReload: { at: string; ok: boolean } | null = null;
  const reload = (): ReloadReport => {
    const { config: next, report } = loadForReload(configFile, config(), services.registry.list().map((i) => i.ipv4));
    lastReload = { at: new Date().toISOString(), ok: report.ok };
    if (!next) {
      log.error('reload refused: the configuration is invalid; keeping the running one', { problems: report.problems.length });
      for (const p of report.problems) log.error(p);
      return report;
    }
    apply(next);
    for (const w of report.warnings) log.warn(w);
    for (const r of report.needsRestart) log.warn(r);
    log.info('configuration reloaded', { config: next.files.join(', ') });
    return report;
  };
  return { reload, last: () => lastReload };
}

/** Stops accepting, lets requests in flight finish (10 s at most), then writes and closes. */
function closer(server: http.Server, admin: AdminServer | null, services: Services, store: Store, refusals: RefusalLog): () => Promise<void> {
  let closing: Promise<void> | null = null;
  return () => {
    closing ??= new Promise<void>((resolve) => {
      log.info('stopping: finishing requests in flight');
      void admin?.close();
      // Connections go as soon as they are idle: those busy now finish their request first.
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const force = setTimeout(() => server.closeAllConnections(), 10000);
      server.close(() => {
        clearInterval(sweep);
        clearTimeout(force);
        services.dnsmasq.close();
        void services.registry.close();
        refusals.close();
        void Promise.resolve(store.close()).catch(() => undefined).then(() => {
          log.info('stopped');
          resolve();
        });
      });
      server.closeIdleConnections();
    });
    return closing;
  };
}
