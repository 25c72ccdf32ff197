// What is degraded right now: the shared store, dnsmasq files, dnsmasq itself, the logfile. Metadata keeps being
// served whatever this says (and uploads recorded, unless the shared store is unreachable); it
// tells the admin what to fix.

import type { DnsmasqFiles } from './dnsmasq/files.js';
import { logfileStatus } from './log.js';

export interface Health {
  status: 'ok' | 'degraded';
  problems: string[];
  instances: number;
  dnsmasq: {
    filesWritten: boolean;
    lastWrite: string | null;
    pid: number | null;
    running: boolean;
  };
  logfile: { file: string | null; writable: boolean };
}

/** What health reads: the instance count and the dnsmasq files' state. */
export interface HealthSources {
  registry: { count(): number; storeProblem(): string | null };
  dnsmasq: Pick<DnsmasqFiles, 'getStatus' | 'running'>;
}

export function health(ctx: HealthSources): Health {
  const instances = ctx.registry.count();
  const problems: string[] = [];
  const store = ctx.registry.storeProblem();
  if (store) problems.push(store);
  const files = ctx.dnsmasq.getStatus();
  if (!files.ok) problems.push(`dnsmasq files cannot be written: ${files.lastError ?? 'unknown error'}`);
  const proc = ctx.dnsmasq.running();
  if (!proc.alive) problems.push(`dnsmasq is not running: ${proc.error ?? 'unknown'}`);
  const lf = logfileStatus();
  if (lf.error) problems.push(`logfile ${lf.file ?? ''} cannot be written: ${lf.error}`);
  return {
    status: problems.length === 0 ? 'ok' : 'degraded',
    problems,
    instances,
    dnsmasq: { filesWritten: files.ok, lastWrite: files.lastWrite, pid: proc.pid, running: proc.alive },
    logfile: { file: lf.file, writable: lf.error === null },
  };
}
