// Writes dnsmasq's data files (each atomically: a dot-named temporary file, then rename) and
// signals dnsmasq to re-read them. Host files are rewritten on every change, coalesced during
// bursts; failures are logged and retried, never fatal: the database stays the source of truth.
// dnsmasq's main configuration is not written here: root writes it (see render.ts).

import fs from 'node:fs';
import path from 'node:path';
import type { ConfigSource } from '../config/index.js';
import { writeAtomic } from '../atomic.js';
import { describe } from '../errors.js';
import { moduleLogger } from '../log.js';
import { HostLines } from './hostLines.js';
import { dnsmasqPaths, renderOpts, type HostEntry } from './render.js';

const log = moduleLogger('dnsmasq');

/**
 * Removes the main configuration an earlier mdserver wrote into base_dir. A dnsmasq started from it
 * (md_server's unit, or an old drop-in) would run as root whatever the mdserver account put in it;
 * without the file such a unit fails to start, which says what to fix, instead of running with it.
 * Only a file that mdserver or md_server generated is removed.
 */
function removeLegacyConf(file: string): void {
  try {
    const head = fs.readFileSync(file, 'utf8').slice(0, 200);
    if (!/THIS IS AN AUTO-GENERATED FILE/.test(head)) return;
    fs.rmSync(file);
    log.warn('removed the dnsmasq configuration an earlier version wrote; mdserver-dnsmasq.service now has root write it at each start (mdserver dnsmasq-conf)', { file });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('cannot remove an old dnsmasq configuration', { file, error: describe(e) });
  }
}

export interface DnsmasqStatus {
  ok: boolean;
  lastError: string | null;
  lastWrite: string | null;
  lastHup: string | null;
  hupError: string | null;
}

/** What the metrics hear of: each rewrite of the host files, and each write or signal that failed. */
export interface DnsmasqEvents {
  rewritten?(): void;
  writeFailed?(): void;
  signalFailed?(): void;
}

/** The longest a change waits for the host files during a storm of changes (see scheduleWrite). */
const MAX_GAP_MS = 10_000;

export class DnsmasqFiles {
  private pending: NodeJS.Timeout | null = null;
  private lastFlushAt = 0;
  private lastFlushMs = 0;
  /** Bumped by every rewrite started: a rewrite running in slices stops once it is not the last. */
  private epoch = 0;
  /** A rewrite is running in slices; `again`: the hosts changed since it started. */
  private slicing = false;
  private again = false;
  /** Whether the options file has been written; a retry must write it too. */
  private confWritten = false;
  private readonly status: DnsmasqStatus = { ok: true, lastError: null, lastWrite: null, lastHup: null, hupError: null };
  /** Host entries already reported as unfit for dnsmasq's files, so each is logged once. */
  private readonly reported = new Set<string>();
  private readonly lines = new HostLines();

  constructor(
    private readonly config: ConfigSource,
    private readonly hosts: () => HostEntry[],
    private readonly retryMs = 5000,
    private readonly events: DnsmasqEvents = {},
    private readonly maxGapMs = MAX_GAP_MS,
  ) {}

  getStatus(): DnsmasqStatus {
    return { ...this.status };
  }

  /** Writes the options file and both host files now. Returns false on failure. */
  writeAll(): boolean {
    const cfg = this.config();
    const p = dnsmasqPaths(cfg);
    try {
      fs.mkdirSync(path.dirname(p.dhcpHosts), { recursive: true });
      fs.mkdirSync(p.dnsHostsDir, { recursive: true });
      writeAtomic(p.opts, renderOpts(cfg));
      this.confWritten = true;
      log.info('wrote dnsmasq options', { opts: p.opts });
    } catch (e) {
      this.failed(e);
      return false;
    }
    removeLegacyConf(p.legacyConf);
    return this.flush();
  }

  /**
   * Notes that the host list changed. When nothing was written recently the files are written at
   * once, so a single upload (the libvirt hook's case) is visible to dnsmasq before the reply; in a
   * burst, writes are spaced by ten times the CPU time the last one took (100 ms minimum), so that
   * rewriting a hundred thousand hosts (about a second of CPU on a slow machine) takes at most a
   * tenth of the host during an upload storm, its own or other hosts'. CPU time, not wall time: on
   * a loaded machine a write's wall time grows with the load, and the gap with it. The gap is at
   * most `maxGapMs`, so a change, also one made on another host, reaches the files within that
   * and one write. Such a spaced write runs in slices (see inSlices).
   */
  scheduleWrite(): void {
    if (this.pending) return;
    if (this.slicing) {
      this.again = true;
      return;
    }
    const gap = Math.min(this.maxGapMs, Math.max(100, this.lastFlushMs * 10));
    const wait = this.lastFlushAt + gap - Date.now();
    if (wait <= 0) {
      this.flush();
      return;
    }
    this.pending = setTimeout(() => {
      this.pending = null;
      this.inSlices();
    }, wait);
    this.pending.unref();
  }

  /** Writes both host files now and HUPs dnsmasq; a rewrite running in slices is dropped for it. */
  flush(): boolean {
    if (this.pending) {
      clearTimeout(this.pending);
      this.pending = null;
    }
    this.epoch++;
    this.slicing = false;
    this.again = false;
    const started = process.cpuUsage();
    const steps = this.rewrite();
    for (;;) {
      const r = steps.next();
      if (r.done) return this.done(r.value, cpuMs(started));
    }
  }

  /**
   * A rewrite with the event loop turning between its steps: in a cluster every host rewrites the
   * files of every instance after each burst of changes anywhere, and in one piece that kept a host
   * from answering anything for a quarter to a whole second (100,000 hosts, a loaded machine).
   * A flush() meanwhile (a lone upload, a deletion, a reload, shutdown) writes the files itself and
   * this rewrite stops before its next step, so it never writes over newer text; changes noted
   * meanwhile get a rewrite of their own once it ends.
   */
  private inSlices(): void {
    const epoch = ++this.epoch;
    const cfg = this.config();
    const steps = this.rewrite();
    let used = 0;
    this.slicing = true;
    const step = (): void => {
      if (epoch !== this.epoch) return;
      if (cfg !== this.config()) {
        // A reload without a flush: start again under the new configuration.
        this.slicing = false;
        this.scheduleWrite();
        return;
      }
      const started = process.cpuUsage();
      const r = steps.next();
      used += cpuMs(started);
      if (!r.done) {
        setImmediate(step);
        return;
      }
      this.slicing = false;
      this.done(r.value, used);
      if (this.again) {
        this.again = false;
        this.scheduleWrite();
      }
    };
    step();
  }

  /** Notes when a rewrite ended and the CPU time it took; HUPs dnsmasq after a good one. */
  private done(ok: boolean, used: number): boolean {
    this.lastFlushMs = used;
    if (!ok) return false;
    this.lastFlushAt = Date.now();
    this.hup();
    return true;
  }

  /** One rewrite of both host files, in steps (each a few ms for 100,000 hosts but the first). */
  private *rewrite(): Generator<void, boolean> {
    const cfg = this.config();
    const p = dnsmasqPaths(cfg);
    try {
      const hosts = this.hosts();
      yield;
      const { dhcpHosts, dnsHosts, unfit } = yield* this.lines.renderSteps(cfg, hosts);
      this.reportUnfit(unfit);
      fs.mkdirSync(path.dirname(p.dhcpHosts), { recursive: true });
      fs.mkdirSync(p.dnsHostsDir, { recursive: true });
      writeAtomic(p.dhcpHosts, dhcpHosts);
      yield;
      writeAtomic(p.dnsHosts, dnsHosts);
      if (!this.status.ok) log.info('dnsmasq files are writable again', { dir: cfg.dnsmasq.baseDir });
      this.status.ok = true;
      this.status.lastError = null;
      this.status.lastWrite = new Date().toISOString();
      log.debug('wrote dnsmasq host files', { hosts: hosts.length });
      this.events.rewritten?.();
      return true;
    } catch (e) {
      this.failed(e);
      return false;
    }
  }

  /** Logs, once each, the records isSafeHost left out of dnsmasq's files. */
  private reportUnfit(unfit: readonly HostEntry[]): void {
    for (const h of unfit) {
      const key = JSON.stringify(h);
      if (this.reported.has(key)) continue;
      this.reported.add(key);
      log.warn('left an instance out of the dnsmasq files: its MAC, host name or address cannot be written there', {
        hostName: h.hostName.slice(0, 100), mac: h.mac.slice(0, 100), ipv4: h.ipv4?.slice(0, 100) ?? null, ipv6: h.ipv6?.slice(0, 100) ?? null,
      });
    }
  }

  private failed(e: unknown): void {
    this.status.ok = false;
    this.status.lastError = describe(e);
    this.events.writeFailed?.();
    log.error('cannot write dnsmasq files; will retry', { dir: this.config().dnsmasq.baseDir, error: describe(e) });
    if (!this.pending) {
      this.pending = setTimeout(() => {
        this.pending = null;
        if (this.confWritten) this.flush();
        else this.writeAll();
      }, this.retryMs);
      this.pending.unref();
    }
  }

  /** SIGHUPs the dnsmasq named by the pid file; a missing or stale pid file is only logged. */
  hup(): void {
    const pidFile = dnsmasqPaths(this.config()).pidFile;
    try {
      const pid = readPidFile(pidFile);
      process.kill(pid, 'SIGHUP');
      this.status.lastHup = new Date().toISOString();
      this.status.hupError = null;
      log.debug('sent SIGHUP to dnsmasq', { pid });
    } catch (e) {
      this.status.hupError = describe(e);
      this.events.signalFailed?.();
      log.warn('cannot signal dnsmasq', { pidFile, error: describe(e) });
    }
  }

  /** Whether the dnsmasq named by the pid file is alive (signal 0 probes without disturbing it). */
  running(): { pid: number | null; alive: boolean; error: string | null } {
    const pidFile = dnsmasqPaths(this.config()).pidFile;
    let pid: number;
    try {
      pid = readPidFile(pidFile);
    } catch (e) {
      return { pid: null, alive: false, error: e instanceof PidFileError ? `${pidFile} does not hold a process id` : `cannot read ${pidFile}: ${describe(e)}` };
    }
    try {
      process.kill(pid, 0);
      return { pid, alive: true, error: null };
    } catch {
      return { pid, alive: false, error: `dnsmasq ${pid} is not running (stale pid file ${pidFile})` };
    }
  }

  /** Writes anything still pending or half written; used at shutdown. */
  close(): void {
    if (this.pending || this.slicing) this.flush();
  }
}

/** CPU milliseconds since `started`. */
function cpuMs(started: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(started);
  return (used.user + used.system) / 1000;
}

class PidFileError extends Error {}

/** The process id in `file`; throws PidFileError when it holds anything else (or init's 1). */
function readPidFile(file: string): number {
  const text = fs.readFileSync(file, 'utf8').trim();
  if (!/^\d+$/.test(text) || Number(text) <= 1) throw new PidFileError(`pid file holds "${text.slice(0, 20)}", not a process id`);
  return Number(text);
}
