// Re-reading the configuration of a running server: validate the files again, and work out which
// changes the running processes cannot take over by themselves (they need a restart).

import { ConfigError, formatProblem, loadConfig, SETTING_LIST, settingValue, type Config } from './config/index.js';
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

export type ReloadOutcome = { config: Config; report: ReloadReport } | { config: null; report: ReloadReport };

/** Loads `file` again; never throws, the report says what went wrong. */
export function loadForReload(file: string, current: Config, addresses: readonly (string | null)[]): ReloadOutcome {
  try {
    const { config, warnings } = loadConfig(file);
    const needsRestart = restartNeeded(current, config);
    return { config, report: { ok: true, problems: [], warnings: [...warnings, ...addressWarnings(config, addresses)], needsRestart } };
  } catch (e) {
    const problems = e instanceof ConfigError ? e.problems.map(formatProblem) : [describe(e)];
    return { config: null, report: { ok: false, problems, warnings: [], needsRestart: [] } };
  }
}

/**
 * Pure: the changed settings a reload cannot apply, from the table's restart flags. mdserver's own
 * are named one by one with their values; dnsmasq's are named together, because dnsmasq re-reads
 * its host and option files on SIGHUP but never its main configuration file, and one restart
 * applies them all.
 */
export function restartNeeded(old: Config, next: Config): string[] {
  const out: string[] = [];
  const dnsmasq: string[] = [];
  for (const e of SETTING_LIST) {
    const a = settingValue(old, e);
    const b = settingValue(next, e);
    if (!e.setting.restart || sameValue(a, b)) continue;
    if (e.setting.restart !== 'mdserver') dnsmasq.push(`[${e.section}] ${e.key}`);
    if (e.setting.restart !== 'mdserver-dnsmasq') out.push(`[${e.section}] ${e.key} changed (${String(a)} -> ${String(b)}): restart mdserver to apply it`);
  }
  if (dnsmasq.length > 0) {
    out.push(`the dnsmasq configuration changed (${dnsmasq.join(', ')}): restart mdserver-dnsmasq to apply it`);
  }
  return out;
}

/** Parsed values are strings, numbers, booleans, null or arrays of those. */
function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
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
