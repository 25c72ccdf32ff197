// `mdserver dnsmasq-conf`: writes dnsmasq's main configuration from mdserver's, as root, for
// mdserver-dnsmasq.service to start dnsmasq with. The running server never writes this file:
// dnsmasq reads it as root, and an option such as dhcp-script= in it would run a program as root,
// so it must stay out of reach of the mdserver account (see src/dnsmasq/render.ts).

import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_CONFIG_FILE, loadConfig } from '../config/index.js';
import { describe } from '../errors.js';
import { renderConf } from '../dnsmasq/render.js';
import { CommandError, err, out, parseCommand } from './common.js';

export const DNSMASQ_CONF_USAGE = `Usage: mdserver dnsmasq-conf [--config FILE] [--output FILE]

Prints dnsmasq's configuration for the metadata network, made from the [dnsmasq] section of
mdserver's configuration, or writes it to --output. mdserver-dnsmasq.service runs it as root
each time it starts; the file names the DHCP and DNS data files that mdserver keeps up to date.
Options:
  -c, --config FILE  mdserver's configuration (default ${DEFAULT_CONFIG_FILE})
  -o, --output FILE  write the file (mode 0644, replaced in one step) instead of printing it; its
                     directory must be writable by no other account than the one running this
  -h, --help`;

/**
 * Refuses a directory another account could write to: whoever can replace the file there decides
 * what dnsmasq runs as root. Only the directory holding the file is checked; systemd creates it
 * (RuntimeDirectory=) under root's /run.
 */
function checkDirectory(dir: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    throw new CommandError(`cannot use ${dir}: ${describe(e)}`);
  }
  if (!st.isDirectory()) throw new CommandError(`${dir} is not a directory`);
  const uid = process.getuid?.();
  if ((uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) {
    throw new CommandError(`refusing to write dnsmasq's configuration into ${dir}: another account can write to that directory, and dnsmasq reads the file as root`);
  }
}

export function dnsmasqConfCommand(args: string[]): number {
  const p = parseCommand(args, { output: { type: 'string', short: 'o' } });
  if (p.values['help']) {
    out(DNSMASQ_CONF_USAGE);
    return 0;
  }
  if (p.positionals.length > 0 || p.values['socket'] !== undefined) {
    throw new CommandError(`unexpected arguments\n${DNSMASQ_CONF_USAGE}`, 2);
  }
  const file = typeof p.values['config'] === 'string' ? p.values['config'] : DEFAULT_CONFIG_FILE;
  let text: string;
  try {
    const { config, warnings } = loadConfig(file);
    for (const w of warnings) err(`warning: ${w}`);
    text = renderConf(config);
  } catch (e) {
    throw new CommandError(describe(e));
  }
  const output = p.values['output'];
  if (typeof output !== 'string') {
    out(text);
    return 0;
  }
  const target = path.resolve(output);
  checkDirectory(path.dirname(target));
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.tmp`);
  try {
    // A fresh file (wx): nothing that was at the temporary name is followed or reused.
    fs.writeFileSync(tmp, text, { mode: 0o644, flag: 'wx' });
    fs.chmodSync(tmp, 0o644); // whatever the umask: dnsmasq reads it after dropping to its user
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new CommandError(`cannot write ${target}: ${describe(e)}`);
  }
  return 0;
}
