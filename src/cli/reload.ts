// `mdserver reload`: the running server re-reads its configuration and templates (as on SIGHUP),
// and reports what it found.

import type { ReloadReport } from '../reload.js';
import { adminRequest, COMMON_HELP, CommandError, err, errorMessage, out, parseOptionsOnly, resolveSocket } from './common.js';

export const RELOAD_USAGE = `Usage: mdserver reload [--json] [options]

Asks the running server to re-read its configuration. An invalid configuration is refused
with every problem listed (exit status 1) and the server keeps the one it has.
Options:
      --json         print the server's report as JSON
${COMMON_HELP}`;

export async function reloadCommand(args: string[]): Promise<number> {
  const p = parseOptionsOnly(args, RELOAD_USAGE, { json: { type: 'boolean' } });
  if (!p) return 0;
  const r = await adminRequest(resolveSocket(p), 'POST', '/reload');
  if (r.status !== 200 && r.status !== 422) throw new CommandError(errorMessage(r.body));
  const report = r.body as ReloadReport;
  if (p.values['json'] === true) {
    out(JSON.stringify(report, null, 2));
    return report.ok ? 0 : 1;
  }
  if (!report.ok) {
    err('reload refused; mdserver keeps its current configuration. Problems:');
    for (const x of report.problems) err(`  ${x}`);
    return 1;
  }
  for (const w of report.warnings) err(`warning: ${w}`);
  for (const x of report.needsRestart) err(`needs a restart: ${x}`);
  out('configuration reloaded');
  return 0;
}
