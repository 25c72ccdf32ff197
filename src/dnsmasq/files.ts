// Writes the dnsmasq files (each atomically: a dot-named temporary file, then rename) and signals
// dnsmasq to re-read them. Host files are rewritten on every change, coalesced during bursts;
// failures are logged and retried, never fatal: the database stays the source of truth.

import fs from 'node:fs';
import path from 'node:path';
import type { ConfigSource } from '../config/index.js';
import { writeAtomic } from '../atomic.js';
import { describe } from '../errors.js';
import { moduleLogger } from '../log.js';
import { dnsmasqPaths, renderConf, renderDhcpHosts, renderDnsHosts, renderOpts, type HostEntry } from './render.js';

const log = moduleLogger('dnsmasq');

export interface DnsmasqStatus {
  ok: boolean;
  lastError: string | null;
  lastWrite: string | null;
  lastHup: string | null;
  hupError: string | null;
}

export class DnsmasqFiles {
  private pending: NodeJS.Timeout | null = null;
  private lastFlushAt = 0;
  private lastFlushMs = 0;
  /** Whether the config and options files have been written; a retry must write them too. */
  private confWritten = false;
  private readonly status: DnsmasqStatus = { ok: true, lastError: null, lastWrite: null, lastHup: null, hupError: null };

  constructor(
    private readonly config: ConfigSource,
    private readonly hosts: () => HostEntry[],
    private readonly retryMs = 5000,
  ) {}

  getStatus(): DnsmasqStatus {
    return { ...this.status };
  }

  /** Writes the config and options files and both host files now. Returns false on failure. */
  writeAll(): boolean {
    const cfg = this.config();
    const p = dnsmasqPaths(cfg);
    try {
      fs.mkdirSync(path.dirname(p.dhcpHosts), { recursive: true });
      fs.mkdirSync(p.dnsHostsDir, { recursive: true });
      writeAtomic(p.conf, renderConf(cfg));
      writeAtomic(p.opts, renderOpts(cfg));
      this.confWritten = true;
      log.info('wrote dnsmasq config', { conf: p.conf, opts: p.opts });
    } catch (e) {
      this.failed(e);
      return false;
    }
    return this.flush();
  }

  /**
   * Notes that the host list changed. When nothing was written recently the files are written at
   * once, so a single upload (the libvirt hook's case) is visible to dnsmasq before the reply; in a
   * burst, writes are spaced by at least ten times the cost of the last one (100 ms minimum), so
   * that rewriting ten thousand hosts does not dominate an upload storm.
   */
  changed(): void {
    if (this.pending) return;
    const gap = Math.max(100, this.lastFlushMs * 10);
    const wait = this.lastFlushAt + gap - Date.now();
    if (wait <= 0) {
      this.flush();
      return;
    }
    this.pending = setTimeout(() => {
      this.pending = null;
      this.flush();
    }, wait);
    this.pending.unref();
  }

  /** Writes both host files now and HUPs dnsmasq. */
  flush(): boolean {
    if (this.pending) {
      clearTimeout(this.pending);
      this.pending = null;
    }
    const started = Date.now();
    const cfg = this.config();
    const p = dnsmasqPaths(cfg);
    try {
      const hosts = this.hosts();
      fs.mkdirSync(path.dirname(p.dhcpHosts), { recursive: true });
      fs.mkdirSync(p.dnsHostsDir, { recursive: true });
      writeAtomic(p.dhcpHosts, renderDhcpHosts(hosts, cfg.dnsmasq.leaseLen));
      writeAtomic(p.dnsHosts, renderDnsHosts(cfg, hosts));
      this.lastFlushAt = Date.now();
      this.lastFlushMs = this.lastFlushAt - started;
      if (!this.status.ok) log.info('dnsmasq files are writable again', { dir: cfg.dnsmasq.baseDir });
      this.status.ok = true;
      this.status.lastError = null;
      this.status.lastWrite = new Date().toISOString();
      log.debug('wrote dnsmasq host files', { hosts: hosts.length, ms: this.lastFlushMs });
    } catch (e) {
      this.failed(e);
      return false;
    }
    this.hup();
    return true;
  }

  private failed(e: unknown): void {
    this.status.ok = false;
    this.status.lastError = describe(e);
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

  /** Writes anything still pending; used at shutdown. */
  close(): void {
    if (this.pending) this.flush();
  }
}

class PidFileError extends Error {}

/** The process id in `file`; throws PidFileError when it holds anything else (or init's 1). */
function readPidFile(file: string): number {
  const text = fs.readFileSync(file, 'utf8').trim();
  if (!/^\d+$/.test(text) || Number(text) <= 1) throw new PidFileError(`pid file holds "${text.slice(0, 20)}", not a process id`);
  return Number(text);
}
