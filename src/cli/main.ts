// The `mdserver` command line: run the server, check a configuration, print the version, and the
// admin subcommands (each in its own module beside this one, the client side of the admin socket) that talk to a running server.

import { sysinfoCommand } from './sysinfo.js';
import { STYLES } from '../libvirt/sysinfo.js';
import { ConfigError, DEFAULT_CONFIG_FILE, dumpConfig, loadConfig } from '../config/index.js';
import { describe } from '../errors.js';
import { moduleLogger, reopenLogfile } from '../log.js';
import { CommandError } from './common.js';
import { dnsmasqConfCommand } from './dnsmasqconf.js';
import { tuneHeap } from './heap.js';
import { instancesCommand } from './instances.js';
import { reloadCommand } from './reload.js';
import { statusCommand } from './status.js';
import { syncCommand } from './sync.js';
import { startServer, type Running } from '../server.js';
import { sdNotify } from '../systemd/notify.js';
import { VERSION } from '../version.js';

const log = moduleLogger('cli');

/** Subcommands: name -> handler of the arguments after the name, returning the exit status. */
const SUBCOMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  'dnsmasq-conf': (args) => Promise.resolve(dnsmasqConfCommand(args)),
  instances: instancesCommand,
  reload: reloadCommand,
  status: statusCommand,
  // Loaded when run: the PostgreSQL client is no part of the server's start-up.
  store: async (args) => (await import('./storeCopy.js')).storeCommand(args),
  sync: syncCommand,
  sysinfo: (args) => Promise.resolve(sysinfoCommand(args)),
};

const USAGE = `Usage: mdserver [CONFIG]                 run the metadata server
       mdserver --check-config [CONFIG]  print the resolved configuration (secrets hidden),
                                         or every problem in it (exit status 1)
       mdserver sysinfo --style ${STYLES.join('|')} [--filter] [--apply] <domain.xml | name>
                                         make a domain's cloud-init find mdserver
                                         (mdserver sysinfo --help for more)
       mdserver instances list|show NAME|delete NAME|rekey NAME --uuid UUID [--json]
       mdserver instances password NAME [--generate]
                                         a one-time password for a CloudStack guest
       mdserver instances wait NAME... [--timeout S] [--json]   until each VM is provisioned
       mdserver reload                   re-read the configuration (as SIGHUP does)
       mdserver status [--json]          health of the running server and its dnsmasq files
       mdserver sync [--connect URI]     register every domain libvirt knows
       mdserver store copy [--from DB_FILE] --to URL
                                         copy this host's records into a shared
                                         PostgreSQL store ([store] url)
       mdserver dnsmasq-conf [--output FILE]
                                         dnsmasq's configuration (run as root by
                                         mdserver-dnsmasq.service)
       mdserver --version | --help

CONFIG defaults to ${DEFAULT_CONFIG_FILE}. The subcommands talk to the running server over its
admin socket; 'mdserver COMMAND --help' describes each.`;

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

/**
 * Tells systemd the service is ready once the dnsmasq files exist (mdserver-dnsmasq starts after
 * this unit is ready and reads them) and the server listens (startServer has returned).
 */
async function announceReady(r: Running): Promise<void> {
  let warned = false;
  while (!r.services.dnsmasq.getStatus().ok) {
    if (!warned) log.warn('waiting for the dnsmasq files to be written before reporting ready');
    warned = true;
    await new Promise((res) => setTimeout(res, 1000));
  }
  const a = r.address;
  await sdNotify({ READY: '1', STATUS: `serving metadata on ${a.address}:${a.port}` });
}

async function run(file: string): Promise<number> {
  // Before the instances are read: how far the heap grows between full collections (heap.ts).
  const heapFlag = tuneHeap();
  // SIGUSR1 reopens the logfile (logrotate's postrotate sends it). Installed first: without a
  // listener Node takes SIGUSR1 as the request to open its inspector on 127.0.0.1:9229, where
  // any local account could attach and run code in this process.
  process.on('SIGUSR1', () => {
    const opened = reopenLogfile();
    log.info('signal received; logfile reopened', { signal: 'SIGUSR1', reopened: opened });
  });
  let running;
  try {
    running = await startServer(file);
  } catch (e) {
    if (e instanceof ConfigError) process.stderr.write(`mdserver: ${e.message}\n`);
    else log.error('cannot start', { error: describe(e) });
    return 1;
  }
  const r = running;
  // Logged once the configured log levels apply (startServer sets them).
  if (heapFlag !== null) log.info('V8 heap growth set', { flag: heapFlag });
  // SIGHUP reloads, as for most daemons (and systemd's ExecReload sends it).
  process.on('SIGHUP', () => {
    log.info('signal received', { signal: 'SIGHUP' });
    r.reload();
  });
  void announceReady(r);
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

async function subcommand(name: string, args: string[]): Promise<number> {
  const handler = SUBCOMMANDS[name] as (args: string[]) => Promise<number>;
  try {
    return await handler(args);
  } catch (e) {
    if (e instanceof CommandError) {
      process.stderr.write(`mdserver ${name}: ${e.message}\n`);
      return e.code;
    }
    throw e;
  }
}

export async function main(argv: string[]): Promise<number> {
  const args = argv.slice(2);
  const first = args[0];
  if (first !== undefined && Object.hasOwn(SUBCOMMANDS, first)) return subcommand(first, args.slice(1));
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
