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
import { createListener } from './http/app.js';
import { guardConnections, openFileLimit } from './http/connections.js';
import { ConnectionCounts } from './net/connlimit.js';
import { ListenerSet, type ListenerSpec } from './net/listeners.js';
import { createPasswordApp } from './http/passwordApp.js';
import { RefusalLog } from './http/refusalLog.js';
import { Passwords } from './instances/passwords.js';
import { Registry } from './instances/registry.js';
import { configureLogging, moduleLogger } from './log.js';
import { MetadataService } from './metadata/service.js';
import { Metrics } from './metrics/metrics.js';
import { TokenIssuer } from './metadata/token.js';
import { ProvisioningTracker } from './provisioning/tracker.js';
import { RateLimiter } from './net/ratelimit.js';
import { loadForReload, type ReloadReport } from './reload.js';
import type { Services } from './services.js';
import { reportingFaults } from './store/faults.js';
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
function buildServices(config: () => Config, rawStore: Store): Services {
  let registry: Registry | null = null;
  let dnsmasq: DnsmasqFiles | null = null;
  const metrics = new Metrics({
    instances: () => registry?.count() ?? 0,
    dnsmasq: () => dnsmasq?.getStatus() ?? { ok: true, lastHup: null },
  });
  const store = reportingFaults(rawStore, metrics.storeError);
  rawStore.onBackgroundFault?.(metrics.storeError);
  dnsmasq = new DnsmasqFiles(config, () => registry?.hostEntries() ?? [], undefined, {
    rewritten: metrics.dnsmasqRewritten, writeFailed: metrics.dnsmasqWriteFailed, signalFailed: metrics.dnsmasqSignalFailed,
  });
  registry = new Registry(config, store, dnsmasq);
  const provisioning = new ProvisioningTracker(store);
  provisioning.onOutcome = metrics.provisioned;
  // Another host's uploads and deletions change this host's dnsmasq files too.
  store.onExternalChange?.(() => dnsmasq.scheduleWrite());
  return {
    config,
    metrics,
    metadata: new MetadataService(config, store),
    registry,
    userdata: new UserdataRenderer(config, fs.readFileSync(BUILTIN_TEMPLATE, 'utf8'), store),
    tokens: new TokenIssuer(),
    dnsmasq,
    limiter: new RateLimiter(() => config().mdserver),
    listeners: new ListenerSet(),
    provisioning,
    passwords: new Passwords(config, store),
  };
}

/** OpenStack's metadata address, link-local: cloud-init's OpenStack datasource asks it (23.1+). */
export const LINK_LOCAL_METADATA = 'fe80::a9fe:a9fe';

/**
 * The metadata listeners, each a server over the same app whose VM connections count against the
 * same caps: the IPv4 address, which must be bound, and with `ipv6 = yes` listen_address6 and the
 * link-local address on the bridge, which are retried until they can be (see net/listeners.ts).
 */
async function listenAll(cfg: Config, services: Services, newServer: () => http.Server): Promise<{ main: http.Server; bound: { address: string; port: number } }> {
  const m = cfg.mdserver;
  const main = newServer();
  await services.listeners.add(main, { label: 'metadata', address: m.listenAddress, port: m.port, required: true });
  const a = main.address() as { address: string; port: number };
  const port = a.port;
  if (m.ipv6) {
    await services.listeners.add(newServer(), { label: 'metadata IPv6', address: m.listenAddress6, port });
    if (m.listenLinklocal) {
      await services.listeners.add(newServer(), { label: 'metadata link-local', address: `${LINK_LOCAL_METADATA}%${cfg.dnsmasq.interface}`, port });
    }
  }
  return { main, bound: { address: a.address, port } };
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
    const app = createListener(services, refusals);
    const connections = new ConnectionCounts();
    const guard = { config, refusals, log: httpLog, fdLimit: openFileLimit() };
    const newServer = (): http.Server => {
      const s = http.createServer(LISTENER_TIMEOUTS, app);
      guardConnections(s, guard, connections);
      return s;
    };
    const { main: server, bound } = await listenAll(cfg, services, newServer);
    log.info('listening', { address: bound.address, port: bound.port, instances: store.count() });
    if (cfg.cloudstack.enabled) {
      await services.passwords.purge();
      const passwordApp = createPasswordApp(services, refusals);
      for (const l of cloudstackListeners(cfg, bound.port)) {
        const s = http.createServer(LISTENER_TIMEOUTS, l.password ? passwordApp : app);
        guardConnections(s, guard, connections);
        await services.listeners.add(s, l.spec);
      }
    }
    const reloader = makeReload(configFile, config, services, applyConfig);
    let admin: AdminServer | null = null;
    const adminSocket = cfg.mdserver.adminSocket;
    if (adminSocket) {
      const adminApp = createAdminApp({ services, reload: reloader.reload, listening: bound, startedAt: new Date(), lastReload: reloader.last, connections });
      admin = await listenAdmin(adminSocket, adminApp).catch((e: unknown) => {
        services.listeners.stopRetrying();
        for (const s of services.listeners.servers()) {
          s.close();
          (s as http.Server).closeAllConnections();
        }
        throw e;
      });
    }
    const close = closer(admin, services, store, refusals);
    return { configFile, config, store, services, server, address: bound, adminSocket, reload: reloader.reload, close };
  } catch (e) {
    await Promise.resolve(store.close()).catch(() => undefined);
    throw e;
  }
}

/** The labels of `[cloudstack] enabled`'s listeners in status, /health and the log. */
export const CLOUDSTACK_METADATA = 'cloudstack metadata';
export const CLOUDSTACK_PASSWORD = 'cloudstack password';

/**
 * What `[cloudstack] enabled` listens on besides the metadata address: the metadata app on the
 * gateway (a CloudStack guest finds its server as its DHCP server or default gateway; the port as
 * bound, so a test's port 0 serves both), and the password server on both. All optional: the
 * bridge may come up after mdserver, so an address not there yet is retried, never fatal.
 */
function cloudstackListeners(cfg: Config, port: number): { spec: ListenerSpec; password: boolean }[] {
  const { listenAddress } = cfg.mdserver;
  const { gateway } = cfg.dnsmasq;
  const out: { spec: ListenerSpec; password: boolean }[] = [];
  if (gateway !== listenAddress) out.push({ spec: { label: CLOUDSTACK_METADATA, address: gateway, port }, password: false });
  for (const address of new Set([listenAddress, gateway])) {
    out.push({ spec: { label: CLOUDSTACK_PASSWORD, address, port: cfg.cloudstack.passwordPort }, password: true });
  }
  return out;
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
function closer(admin: AdminServer | null, services: Services, store: Store, refusals: RefusalLog): () => Promise<void> {
  let closing: Promise<void> | null = null;
  return () => {
    closing ??= new Promise<void>((resolve) => {
      log.info('stopping: finishing requests in flight');
      void admin?.close();
      services.listeners.stopRetrying();
      const servers = services.listeners.servers() as http.Server[];
      const each = (f: (s: http.Server) => void) => (): void => servers.forEach(f);
      // Connections go as soon as they are idle: those busy now finish their request first.
      const sweep = setInterval(each((s) => s.closeIdleConnections()), 50);
      const force = setTimeout(each((s) => s.closeAllConnections()), 10000);
      void Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => {
        clearInterval(sweep);
        clearTimeout(force);
        services.dnsmasq.close();
        void services.registry.close();
        void services.provisioning.close();
        refusals.close();
        void Promise.resolve(store.close()).catch(() => undefined).then(() => {
          log.info('stopped');
          resolve();
        });
      });
      each((s) => s.closeIdleConnections())();
    });
    return closing;
  };
}
