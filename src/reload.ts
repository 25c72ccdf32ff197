// Re-reading the configuration of a running server: validate the files again, and work out which
// changes the running processes cannot take over by themselves (they need a restart).

import { ConfigError, loadConfig, type Config } from './config/index.js';
import { formatProblem } from './config/schema.js';
import { renderConf } from './dnsmasq/render.js';
import { describe } from './errors.js';
import { inNet, parseIPv4 } from './net/ip.js';

export interface ReloadReport {
  /** True when the new configuration was valid and is now in use. */
  ok: boolean;
  /** Every problem found; when there are any, the old configuration stays in use. */
  problems: string[];
  warnings: string[];
  /** Changed settings that take effect only after a restart, each saying what to restart. */
  needsRestart: string[];
}

export type Loaded = { config: Config; report: ReloadReport } | { config: null; report: ReloadReport };

/** Loads `file` again; never throws, the report says what went wrong. */
export function loadForReload(file: string, current: Config, addresses: readonly (string | null)[]): Loaded {
  try {
    const { config, warnings } = loadConfig(file);
    const needsRestart = restartNeeded(current, config);
    return { config, report: { ok: true, problems: [], warnings: [...warnings, ...addressWarnings(config, addresses)], needsRestart } };
  } catch (e) {
    const problems = e instanceof ConfigError ? e.problems.map(formatProblem) : [describe(e)];
    return { config: null, report: { ok: false, problems, warnings: [], needsRestart: [] } };
  }
}

/** Pure: what differs between two configurations that a reload cannot apply. */
export function restartNeeded(old: Config, next: Config): string[] {
  const out: string[] = [];
  const server: [string, unknown, unknown][] = [
    ['[mdserver] port', old.mdserver.port, next.mdserver.port],
    ['[mdserver] listen_address', old.mdserver.listenAddress, next.mdserver.listenAddress],
    ['[mdserver] db_file', old.mdserver.dbFile, next.mdserver.dbFile],
    ['[mdserver] admin_socket', old.mdserver.adminSocket, next.mdserver.adminSocket],
  ];
  for (const [name, a, b] of server) {
    if (a !== b) out.push(`${name} changed (${String(a)} -> ${String(b)}): restart mdserver to apply it`);
  }
  // dnsmasq re-reads its host and option files on SIGHUP, but never its main configuration file.
  if (renderConf(old) !== renderConf(next)) {
    out.push('the dnsmasq configuration changed ([dnsmasq] network, interface, user, lease or paths): restart mdserver-dnsmasq to apply it');
  }
  return out;
}

/** Pure: a warning when registered addresses fall outside a changed VM network. */
export function addressWarnings(next: Config, addresses: readonly (string | null)[]): string[] {
  let outside = 0;
  for (const a of addresses) {
    const n = a === null ? null : parseIPv4(a);
    if (n !== null && !inNet(next.dnsmasq.net, n)) outside++;
  }
  if (outside === 0) return [];
  return [`${outside} registered instance(s) have addresses outside ${next.dnsmasq.netAddress}/${next.dnsmasq.netPrefix}; delete and re-register them to get new ones`];
}
