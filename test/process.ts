// Test support for real processes: the mdserver command, the shipped shell scripts, and a server
// started as its own process (as systemd would start it).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/server.js';

export const ROOT = PACKAGE_ROOT;
export const MDSERVER = path.join(ROOT, 'bin', 'mdserver');
export const HOOK = path.join(ROOT, 'hooks', 'qemu');

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a program to completion without blocking the event loop (an in-process server may be the peer). */
export function run(cmd: string, args: string[], o: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<Ran> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: { ...process.env, ...o.env }, timeout: o.timeoutMs ?? 60000, cwd: o.cwd, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const status = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ status, stdout, stderr, ms: Date.now() - started });
    });
    if (o.input !== undefined) child.stdin?.end(o.input);
    else child.stdin?.end();
  });
}

/** `mdserver ARGS...` as a user would type it. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return run(process.execPath, [MDSERVER, ...args], { env });
}

/** Starts `mdserver CONFIG` as a separate process; the caller stops it. */
export function spawnServer(config: string, env: NodeJS.ProcessEnv = {}): ChildProcess & { output(): string } {
  const child = spawn(process.execPath, [MDSERVER, config], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  return Object.assign(child, { output: () => output });
}

/** Sends SIGTERM and waits for the exit status. */
export function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}
