// The processes a benchmark run drives: the server under test (or a floor), and the load
// generator; plus what /proc says about them (CPU time, resident memory).

import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Connection, requestHead } from './http1.js';
import type { Job, JobResult, Message } from './loadgen.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The checkout (dist/bench -> ../..). */
export const ROOT = path.resolve(HERE, '..', '..');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Served {
  child: ChildProcess;
  port: number;
  /** Milliseconds from spawn to the first answered request. */
  startupMs: number;
  stop(): Promise<void>;
}

/**
 * Spawns a server and polls it (every 2 ms) until `probe` is answered with a 200: the time that
 * takes is the start-up time a VM booting during a host restart would see.
 */
export async function serve(args: string[], port: number, probe: { path: string; from: string }, logFile: string, extraNodeArgs: string[] = []): Promise<Served> {
  const out = fs.openSync(logFile, 'a');
  const t0 = performance.now();
  const child = spawn(process.execPath, [...extraNodeArgs, ...args], { cwd: ROOT, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  let exited: string | null = null;
  const gone = new Promise<void>((resolve) => {
    child.once('exit', (code, sig) => {
      exited = `exited with ${sig ?? code}`;
      resolve();
    });
  });
  for (;;) {
    if (exited !== null) throw new Error(`${args.join(' ')} ${String(exited)} before answering; see ${logFile}`);
    if (performance.now() - t0 > 30_000) {
      child.kill('SIGKILL');
      throw new Error(`${args.join(' ')} did not answer within 30 s; see ${logFile}`);
    }
    const conn = new Connection(port, probe.from);
    const r = await conn.send(requestHead('GET', probe.path)).catch(() => null);
    conn.close();
    if (r?.status === 200) break;
    await sleep(2);
  }
  const startupMs = performance.now() - t0;
  return {
    child,
    port,
    startupMs,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

const CLK_TCK = 100;

/** CPU time (user + system) a process has used, in milliseconds, from /proc/<pid>/stat. */
export function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may contain spaces; fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** Resident memory now and at its peak, in MiB, from /proc/<pid>/status. */
export function memory(pid: number): { rssMiB: number; peakMiB: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
}

export interface Measured extends JobResult {
  /** CPU the server used per request during the measured part, in microseconds. */
  serverCpuUsPerRequest: number;
}

/** The load generator process; one job at a time. */
export class LoadGen {
  private readonly child: ChildProcess;

  constructor() {
    this.child = fork(path.join(HERE, 'loadgen.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  }

  /** Runs `job` against the server process `serverPid`, sampling its CPU over the measured part. */
  run(job: Job, serverPid: number): Promise<Measured> {
    return new Promise((resolve, reject) => {
      let cpu0 = NaN;
      const onMessage = (m: Message): void => {
        if (m.event === 'measuring') {
          cpu0 = cpuMs(serverPid);
          return;
        }
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
        if (m.event === 'failed') {
          reject(new Error(`load generator: ${m.error}`));
          return;
        }
        const used = cpuMs(serverPid) - cpu0;
        resolve({ ...m.result, serverCpuUsPerRequest: (used * 1000) / m.result.requests });
      };
      const onExit = (): void => reject(new Error('the load generator exited'));
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send(job);
    });
  }

  close(): void {
    this.child.disconnect();
  }
}
