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
import type { AppContext } from './http/context.js';
import { RateLimiter } from './http/ratelimit.js';
import { Registry } from './instances/registry.js';
import { configureLogging, moduleLogger } from './log.js';
import { MetadataService } from './metadata/service.js';
import { TokenIssuer } from './metadata/token.js';
import { loadForReload, type ReloadReport } from './reload.js';
import { openStore } from './store/open.js';
import type { Store } from './store/store.js';
import { UserdataRenderer } from './userdata/renderer.js';
import { VERSION } from './version.js';

const log = moduleLogger('main');

/** The checkout or package root (dist/src/server.js -> ../..). */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILTIN_TEMPLATE = path.join(PACKAGE_ROOT, 'templates', 'builtin.yaml');

export interface Running {
  readonly configFile: string;
  config(): Config;
  readonly store: Store;
  readonly ctx: AppContext;
  readonly server: http.Server;
  /** The address and port actually bound. */
  readonly address: { address: string; port: number };
  /** The admin socket's path, or null when it is disabled. */
  readonly adminSocket: string | null;
  /**
   * Re-reads the configuration file and, when it is valid, swaps it into every service and
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

export async function startServer(configFile: string, opts: StartOptions = {}): Promise<Running> {
  const { config: first, warnings } = loadConfig(configFile);
  let cfg = first;
  if (!opts.keepLogging) {
    configureLogging({ ...cfg.loglevels, debug: cfg.mdserver.debug, logfile: cfg.mdserver.logfile });
  }
  for (const w of warnings) log.warn(w);
  log.info('starting mdserver', { version: VERSION, config: cfg.files.join(', ') });

  const store = openStore(cfg.mdserver.dbFile);
  try {
    store.touchLocation(cfg.service.location, cfg.service.hostname, cfg.service.version);
    let registry: Registry | null = null;
    const dnsmasq = new DnsmasqFiles(cfg, () => registry?.hostEntries() ?? []);
    registry = new Registry(cfg, store, dnsmasq);
    // The files are rebuilt from the database at every start, so they always match it.
    dnsmasq.writeAll();
    const ctx: AppContext = {
      config: () => cfg,
      metadata: new MetadataService(cfg, store),
      registry,
      userdata: new UserdataRenderer(cfg, fs.readFileSync(BUILTIN_TEMPLATE, 'utf8')),
      tokens: new TokenIssuer(),
      dnsmasq,
      limiter: new RateLimiter({ rate: cfg.mdserver.rateLimit, burst: cfg.mdserver.rateBurst }),
    };
    const server = http.createServer({ keepAliveTimeout: 5000, requestTimeout: 30000, headersTimeout: 10000 }, createApp(ctx));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(cfg.mdserver.port, cfg.mdserver.listenAddress, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address() as { address: string; port: number };
    log.info('listening', { address: bound.address, port: bound.port, instances: store.count() });

    let lastReload: { at: string; ok: boolean } | null = null;
    const reg = registry;
    const reload = (): ReloadReport => {
      const { config: next, report } = loadForReload(configFile, cfg, reg.list().map((i) => i.ipv4));
      lastReload = { at: new Date().toISOString(), ok: report.ok };
      if (!next) {
        log.error('reload refused: the configuration is invalid; keeping the running one', { problems: report.problems.length });
        for (const p of report.problems) log.error(p);
        return report;
      }
      cfg = next;
      if (!opts.keepLogging) {
        configureLogging({ ...cfg.loglevels, debug: cfg.mdserver.debug, logfile: cfg.mdserver.logfile });
      }
      ctx.metadata.setConfig(cfg);
      reg.setConfig(cfg);
      ctx.userdata.setConfig(cfg);
      dnsmasq.setConfig(cfg);
      ctx.limiter.setSettings({ rate: cfg.mdserver.rateLimit, burst: cfg.mdserver.rateBurst });
      store.touchLocation(cfg.service.location, cfg.service.hostname, cfg.service.version);
      dnsmasq.writeAll();
      for (const w of report.warnings) log.warn(w);
      for (const r of report.needsRestart) log.warn(r);
      log.info('configuration reloaded', { config: cfg.files.join(', ') });
      return report;
    };

    let admin: AdminServer | null = null;
    const adminSocket = cfg.mdserver.adminSocket;
    if (adminSocket) {
      try {
        admin = await listenAdmin(adminSocket, createAdminApp({
          config: () => cfg,
          ctx,
          reload,
          listening: { address: bound.address, port: bound.port },
          startedAt: new Date(),
          lastReload: () => lastReload,
        }));
      } catch (e) {
        server.close();
        server.closeAllConnections();
        throw e;
      }
    }

    let closing: Promise<void> | null = null;
    return {
      configFile,
      config: () => cfg,
      store,
      ctx,
      server,
      address: { address: bound.address, port: bound.port },
      adminSocket,
      reload,
      close() {
        closing ??= new Promise<void>((resolve) => {
          log.info('stopping: finishing requests in flight');
          void admin?.close();
          // Connections go as soon as they are idle: those busy now finish their request first.
          const sweep = setInterval(() => server.closeIdleConnections(), 50);
          const force = setTimeout(() => server.closeAllConnections(), 10000);
          server.close(() => {
            clearInterval(sweep);
            clearTimeout(force);
            dnsmasq.close();
            store.close();
            log.info('stopped');
            resolve();
          });
          server.closeIdleConnections();
        });
        return closing;
      },
    };
  } catch (e) {
    store.close();
    throw e;
  }
}
