// `mdserver store copy`: copies this host's records into the shared PostgreSQL store before it
// joins a cluster (src/store/pgCopy.ts does the work). Reads the files directly: the server may
// keep running meanwhile, on its SQLite file, until its configuration points at the cluster.

import fs from 'node:fs';
import { DEFAULT_CONFIG_FILE, loadConfig } from '../config/index.js';
import { describe } from '../errors.js';
import { dbPaths } from '../store/open.js';
import { copyToPg, readSource } from '../store/pgCopy.js';
import { CommandError, err, out, parseCommand } from './common.js';

export const STORE_USAGE = `Usage: mdserver store copy [--config FILE] [--from DB_FILE] --to URL

Copies the instance records of this host into the PostgreSQL store at URL (a postgresql:// URL,
as [store] url takes it). All or nothing: a record that is there already is skipped (a second
run copies nothing); one whose uuid, name, MAC, address or host name another stored record has
is reported with both, and then nothing is written (exit status 1).
Options:
  -c, --config FILE  the configuration whose [mdserver] db_file is copied and whose
                     [store] password_file holds the password (default ${DEFAULT_CONFIG_FILE})
      --from DB_FILE the SQLite file, or md_server's JSON file, to copy instead
      --to URL       the PostgreSQL store
  -h, --help`;

function settings(p: ReturnType<typeof parseCommand>): { from: string; to: string; password: string | null } {
  const to = p.values['to'];
  if (typeof to !== 'string' || p.positionals.length !== 1 || p.positionals[0] !== 'copy') {
    throw new CommandError(`expected: store copy --to URL\n${STORE_USAGE}`, 2);
  }
  const fromArg = p.values['from'];
  const configFile = typeof p.values['config'] === 'string' ? p.values['config'] : DEFAULT_CONFIG_FILE;
  let cfg: ReturnType<typeof loadConfig>['config'] | null = null;
  try {
    cfg = loadConfig(configFile).config;
  } catch (e) {
    // With --from, the configuration is needed only for a password, which PGPASSWORD may give.
    if (typeof fromArg !== 'string') throw new CommandError(describe(e));
  }
  const from = typeof fromArg === 'string' ? fromArg : (cfg as NonNullable<typeof cfg>).mdserver.dbFile;
  return { from, to, password: cfg?.store.password ?? null };
}

export async function storeCommand(args: string[]): Promise<number> {
  const p = parseCommand(args, { from: { type: 'string' }, to: { type: 'string' } });
  if (p.values['help']) {
    out(STORE_USAGE);
    return 0;
  }
  const { from, to, password } = settings(p);
  // md_server's JSON file once imported: the SQLite file beside it is what the server keeps current.
  const paths = dbPaths(from);
  const file = fs.existsSync(paths.sqlite) ? paths.sqlite : (paths.json ?? paths.sqlite);
  let source: ReturnType<typeof readSource>;
  try {
    source = readSource(file);
  } catch (e) {
    throw new CommandError(describe(e));
  }
  for (const why of source.skipped) err(`skipped: ${why}`);
  const report = await copyToPg(source, to, password, (done, total) => err(`copied ${done} of ${total} records`)).catch((e: unknown) => {
    throw new CommandError(`cannot copy into ${to}: ${describe(e)}`);
  });
  if (report.conflicts.length > 0) {
    for (const c of report.conflicts) err(`conflict: ${c}`);
    err(`${report.conflicts.length} conflict(s): nothing was copied; fix them (mdserver instances rekey or delete, on either side) and run this again`);
    return 1;
  }
  out(`${report.copied} record(s) copied, ${report.present} already there, ${report.skipped.length} skipped, of ${report.total} in ${file}`);
  return 0;
}
