// The `mdserver` command line: run the server, check a configuration, print the version.

import { sysinfoCommand } from './commands/sysinfo.js';
import { ConfigError, DEFAULT_CONFIG_FILE, dumpConfig, loadConfig } from './config/index.js';
import { describe } from './errors.js';
import { moduleLogger } from './log.js';
import { startServer } from './server.js';
import { VERSION } from './version.js';

const log = moduleLogger('main');

const USAGE = `Usage: mdserver [CONFIG]                 run the metadata server
       mdserver --check-config [CONFIG]  print the resolved configuration (secrets hidden),
                                         or every problem in it (exit status 1)
       mdserver sysinfo --style ec2|openstack|nocloud [--apply] <domain.xml | name>
                                         make a domain's cloud-init find mdserver
                                         (mdserver sysinfo --help for more)
       mdserver --version | --help

CONFIG defaults to ${DEFAULT_CONFIG_FILE}.`;

function checkConfig(file: string): number {
  try {
    const { config, warnings } = loadConfig(file);
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    process.stdout.write(dumpConfig(config).join('\n') + '\n');
    return 0;
  } catch (e) {
    process.stderr.write(`${describe(e)}\n`);
    return 1;
  }
}

async function run(file: string): Promise<number> {
  let running;
  try {
    running = await startServer(file);
  } catch (e) {
    if (e instanceof ConfigError) process.stderr.write(`mdserver: ${e.message}\n`);
    else log.error('cannot start', { error: describe(e) });
    return 1;
  }
  const r = running;
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      log.info('signal received', { signal: sig });
      void r.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const args = argv.slice(2);
  if (args[0] === 'sysinfo') return sysinfoCommand(args.slice(1));
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (args.includes('--version') || args.includes('-V')) {
    process.stdout.write(`mdserver ${VERSION}\n`);
    return 0;
  }
  const flags = args.filter((a) => a.startsWith('-'));
  const positional = args.filter((a) => !a.startsWith('-'));
  const unknown = flags.filter((f) => f !== '--check-config');
  if (unknown.length > 0 || positional.length > 1) {
    process.stderr.write(`mdserver: unexpected arguments: ${[...unknown, ...positional.slice(1)].join(' ')}\n${USAGE}\n`);
    return 2;
  }
  const file = positional[0] ?? DEFAULT_CONFIG_FILE;
  if (flags.includes('--check-config')) return checkConfig(file);
  return run(file);
}
