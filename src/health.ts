// What is degraded right now: the shared store, dnsmasq files, dnsmasq itself, the logfile. Metadata keeps being
// served whatever this says (and uploads recorded, unless the shared store is unreachable); it
// tells the admin what to fix.

import type { DnsmasqFiles } from './dnsmasq/files.js';
import type { ListenerSet, ListenerState } from './net/listeners.js';
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
  /** Every listener (metadata, CloudStack) and whether it is bound (an optional one is retried until it is). */
  listeners: ListenerState[];
  /** With `[mdserver] ipv6 = yes`, the prefix instance IPv6 addresses are derived in; else null. */
  ipv6: { prefix: string; gateway: string; listenAddress: string } | null;
}

/** What health reads: the instance count and the dnsmasq files' state. */
export interface HealthSources {
  registry: { count(): number; storeProblem(): string | null };
  dnsmasq: Pick<DnsmasqFiles, 'getStatus' | 'running'>;
  listeners?: Pick<ListenerSet, 'states' | 'problems'>;
  config?: () => { readonly mdserver: { readonly ipv6: boolean; readonly listenAddress6: string };
    readonly dnsmasq: { readonly net6Address: string; readonly net6Prefix: number; readonly gateway6: string } };
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
  problems.push(...(ctx.listeners?.problems() ?? []));
  const cfg = ctx.config?.();
  return {
    status: problems.length === 0 ? 'ok' : 'degraded',
    problems,
    instances,
    dnsmasq: { filesWritten: files.ok, lastWrite: files.lastWrite, pid: proc.pid, running: proc.alive },
    logfile: { file: lf.file, writable: lf.error === null },
    listeners: ctx.listeners?.states() ?? [],
    ipv6: cfg?.mdserver.ipv6
      ? { prefix: `${cfg.dnsmasq.net6Address}/${cfg.dnsmasq.net6Prefix}`, gateway: cfg.dnsmasq.gateway6, listenAddress: cfg.mdserver.listenAddress6 }
      : null,
  };
}
