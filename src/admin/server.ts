// Serves the admin API on a unix socket: reachable only from the host's own processes (file
// permissions decide who), never from a VM, and apart from the metadata port.

import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { RequestListener } from 'node:http';
import { moduleLogger } from '../log.js';

const log = moduleLogger('admin');

export interface AdminServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

/** True when something accepts connections on the socket at `file`. */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(file);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/**
 * A socket file left behind by a process that died is removed; one that a running server still
 * answers on is not taken over, and neither is any file that is not a socket.
 */
async function clearStale(file: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`admin socket ${file} exists and is not a socket; remove it or set [mdserver] admin_socket`);
  if (await answers(file)) throw new Error(`admin socket ${file} is in use: is another mdserver running?`);
  fs.rmSync(file, { force: true });
  log.info('removed a stale admin socket', { socket: file });
}

export async function listenAdmin(file: string, handler: RequestListener): Promise<AdminServer> {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  await clearStale(file);
  const server = http.createServer({ requestTimeout: 30000, headersTimeout: 10000 }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Owner and group only: root, and members of mdserver's group, may administer it.
  fs.chmodSync(file, 0o660);
  log.info('admin interface listening', { socket: file });
  let closing: Promise<void> | null = null;
  return {
    socketPath: file,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => {
          fs.rmSync(file, { force: true });
          resolve();
        });
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
