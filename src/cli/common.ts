// What every admin subcommand shares: its options, finding the running server's admin socket, and
// one JSON request over that socket.

import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { adminSocketPath, DEFAULT_CONFIG_FILE, loadConfig } from '../config/index.js';
import { readConfigFiles } from '../config/ini.js';
import { describe } from '../errors.js';

/** A command's failure that has already been explained to the user: exit with `code`. */
export class CommandError extends Error {
  constructor(message: string, readonly code = 1) {
    super(message);
  }
}

export const COMMON_HELP = `  -c, --config FILE  the server's configuration (default ${DEFAULT_CONFIG_FILE}),
                     read to find the admin socket
  -s, --socket PATH  the admin socket, instead of reading the configuration
  -h, --help`;

export interface Parsed {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
}

type Extra = Record<string, { type: 'string' | 'boolean'; short?: string }>;

/** Parses a subcommand's arguments; unknown options are a usage error (exit status 2). */
export function parseCommand(args: string[], extra: Extra = {}): Parsed {
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        socket: { type: 'string', short: 's' },
        help: { type: 'boolean', short: 'h' },
        ...extra,
      },
    });
    return { positionals, values: values };
  } catch (e) {
    throw new CommandError(describe(e), 2);
  }
}

/**
 * For commands that take options only: parses `args`, prints `usage` for --help (returning null,
 * meaning "done, exit 0"), and refuses positional arguments with a usage error.
 */
export function parseOptionsOnly(args: string[], usage: string, extra: Extra = {}): Parsed | null {
  const p = parseCommand(args, extra);
  if (p.values['help']) {
    out(usage);
    return null;
  }
  if (p.positionals.length > 0) throw new CommandError(`unexpected arguments: ${p.positionals.join(' ')}\n${usage}`, 2);
  return p;
}

/**
 * The admin socket: --socket, else the one the configuration names. When the file on disk does
 * not validate (an edit waiting for `mdserver reload`, say), the socket is still worked out from
 * its raw values, so that the running server can be reached and report the problems itself.
 */
export function resolveSocket(p: Parsed): string {
  if (typeof p.values['socket'] === 'string') return path.resolve(p.values['socket']);
  const file = typeof p.values['config'] === 'string' ? p.values['config'] : DEFAULT_CONFIG_FILE;
  let socket: string | null;
  try {
    socket = loadConfig(file).config.mdserver.adminSocket;
  } catch {
    const read = readConfigFiles(file);
    if (read.files.length === 0) throw new CommandError(`cannot read ${file}: ${read.problems.map((x) => x.message).join('; ')}`);
    const raw = (section: string, key: string, dflt: string): string => read.raw.get(section)?.get(key)?.value ?? dflt;
    socket = adminSocketPath(raw('mdserver', 'admin_socket', ''), raw('dnsmasq', 'run_dir', '/var/run/mdserver'), path.dirname(path.resolve(file)));
  }
  if (!socket) throw new CommandError(`the admin interface is disabled in ${file} ([mdserver] admin_socket = no)`);
  return socket;
}

export interface AdminReply {
  status: number;
  body: unknown;
}

/** One request to the admin API; a server that cannot be reached is a CommandError. */
export function adminRequest(socket: string, method: string, urlPath: string, body?: string, contentType = 'application/xml'): Promise<AdminReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: socket, method, path: urlPath, headers: body === undefined ? {} : { 'Content-Type': contentType }, timeout: 60000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
          } catch {
            reject(new CommandError(`unexpected answer from ${socket}: ${res.statusCode} ${text.slice(0, 200)}`));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 60 s')));
    req.on('error', (e: NodeJS.ErrnoException) => {
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? ' (is mdserver running?)' : e.code === 'EACCES' ? ' (run as root or as a member of the mdserver group)' : '';
      reject(new CommandError(`cannot reach mdserver at ${socket}: ${describe(e)}${hint}`));
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** The message of an admin error answer (`{"error", "message"}`). */
export function errorMessage(body: unknown): string {
  const b = body as { message?: unknown } | null;
  return typeof b?.message === 'string' ? b.message : JSON.stringify(body);
}

export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

export function err(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : text + '\n');
}
