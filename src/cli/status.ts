// `mdserver status`: whether the running server is healthy, and its dnsmasq files' state.
// Exit status 0 when healthy, 1 otherwise (including when it cannot be reached).

import type { StatusReport } from '../admin/protocol.js';
import { adminRequest, COMMON_HELP, CommandError, errorMessage, out, parseOptionsOnly, resolveSocket } from './common.js';

export const STATUS_USAGE = `Usage: mdserver status [--json] [options]

Options:
      --json         print JSON, for scripts and monitoring
${COMMON_HELP}`;

export async function statusCommand(args: string[]): Promise<number> {
  const p = parseOptionsOnly(args, STATUS_USAGE, { json: { type: 'boolean' } });
  if (!p) return 0;
  const r = await adminRequest(resolveSocket(p), 'GET', '/status');
  if (r.status !== 200) throw new CommandError(errorMessage(r.body));
  const s = r.body as StatusReport;
  if (p.values['json'] === true) {
    out(JSON.stringify(s, null, 2));
    return s.healthy ? 0 : 1;
  }
  const d = s.dnsmasq;
  const f = d.files;
  const rows: [string, string][] = [
    ['status', s.healthy ? 'healthy' : 'DEGRADED'],
    ['version', s.version],
    ['pid', String(s.pid)],
    ['up since', `${s.startedAt} (${s.uptimeSeconds} s)`],
    ['config', s.configFiles.join(', ')],
    ['metadata', `${s.listen.address}:${s.listen.port}`],
    // The other listeners, when there are any: IPv6, CloudStack's (each says whether it is bound yet).
    ...(s.listeners ?? []).filter((l) => l.address !== s.listen.address || l.port !== s.listen.port).map((l): [string, string] =>
      [l.label.startsWith('metadata') ? 'metadata' : l.label,
        `${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port} ${l.bound ? '' : `NOT BOUND (retrying): ${l.error ?? ''}`}`.trim()]),
    ...(s.ipv6 ? [['ipv6', `${s.ipv6.prefix}, gateway ${s.ipv6.gateway}`] as [string, string]] : []),
    ['network', s.network],
    ['instances', String(s.instances)],
    ['connections', `${s.connections.open} open from ${s.connections.clients} VM address(es)`],
    ['last reload', s.lastReload ? `${s.lastReload.at} (${s.lastReload.ok ? 'ok' : 'refused'})` : 'never'],
    ['dnsmasq', d.running ? `running, pid ${d.pid ?? '?'}` : 'NOT RUNNING'],
    ['dnsmasq files', f.ok ? `written ${f.lastWrite ?? 'never'}` : `FAILING: ${f.lastError ?? ''}`],
    ['dnsmasq signal', f.hupError ? `failing: ${f.hupError}` : f.lastHup ? `last SIGHUP ${f.lastHup}` : 'not sent yet'],
    ['logfile', s.logfile.file ? `${s.logfile.file}${s.logfile.writable ? '' : ' (CANNOT BE WRITTEN)'}` : 'none'],
    ...s.problems.map((p): [string, string] => ['problem', p]),
    ...s.warnings.map((w): [string, string] => ['warning', w]),
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  out(rows.map(([k, v]) => `${(k + ':').padEnd(w + 1)} ${v}`).join('\n'));
  return s.healthy ? 0 : 1;
}
