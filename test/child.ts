// Runs bin/mdserver as a real child process (for crash, signal and memory tests).

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './netns.js';

export const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mdserver');

export interface ChildServer {
  proc: ChildProcess;
  output(): string;
  rssKb(): number;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function freePort(): number {
  return 20000 + Math.floor(Math.random() * 30000);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Starts `bin/mdserver conf` and waits until it accepts connections on `port`. */
export async function startChild(conf: string, port: number): Promise<ChildServer> {
  const proc = spawn(process.execPath, [BIN, conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  try {
    await waitFor('the server to listen', async () => proc.exitCode !== null || (await accepts(port)), 15000);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  if (proc.exitCode !== null) throw new Error(`mdserver exited: ${out}`);
  return {
    proc,
    output: () => out,
    rssKb: () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'))?.[1] ?? 0),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}
