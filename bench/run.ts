// `npm run bench`: seeds a fresh mdserver with 10,000 instances through /instance-upload, measures
// it against the Node and Express floors under one load generator, repeats the whole run, and
// prints the medians with their ratios and the targets. Not a test: nothing here fails a build.
//
// Options: --runs N (default 3)   --quick (fewer instances, shorter phases: a smoke run)
//          --profile (the server writes a CPU profile per run into the run directory; keeps it)
//          --keep (keep each run's directory)   --json FILE (write every per-run figure)
//          --instances N (default 10000)   --node-args "ARGS" (extra node options for the server)
//          --cluster [...] (three hosts on one PostgreSQL instead: see bench/cluster.ts)

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { FixedJob, Job } from './loadgen.js';
import { freePort, LoadGen, memory, ROOT, serve, type Measured, type Served } from './procs.js';
import { clusterBench } from './cluster.js';
import { writeBenchDir } from './setup.js';
import { fmt, median, pct, table } from './stats.js';

interface Options {
  runs: number;
  instances: number;
  bootVms: number;
  warmupMs: number;
  durationMs: number;
  startups: number;
  profile: boolean;
  keep: boolean;
  json: string | null;
  nodeArgs: string[];
}

function parseArgs(argv: string[]): Options {
  const o: Options = { runs: 3, instances: 10_000, bootVms: 1000, warmupMs: 1000, durationMs: 4000, startups: 3, profile: false, keep: false, json: null, nodeArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--runs') o.runs = Math.max(1, Number(argv[++i]));
    else if (a === '--quick') Object.assign(o, { runs: 1, instances: 1000, bootVms: 200, warmupMs: 300, durationMs: 1000, startups: 1 });
    else if (a === '--profile') o.profile = o.keep = true;
    else if (a === '--keep') o.keep = true;
    else if (a === '--json') o.json = argv[++i] ?? null;
    else if (a === '--instances') o.instances = Math.max(1000, Number(argv[++i]));
    else if (a === '--node-args') o.nodeArgs = (argv[++i] ?? '').split(' ').filter(Boolean);
    else throw new Error(`unknown option ${a}; see the head of bench/run.ts`);
  }
  return o;
}

/** In-flight VMs (the issue's boot storm bound) and connections for the fixed-shape loads. */
const CONCURRENCY = 64;
/** Requests a simulated VM makes on one keep-alive connection before the next VM takes over. */
const PER_CONNECTION = 50;
/** How long the servers sit idle before their settled memory is read. */
const SETTLE_MS = 15_000;

/** Upload connections from the host (the qemu hook runs once per starting domain). */
const UPLOAD_CONCURRENCY = 8;
const HOST = '127.0.0.1';

type Column = 'mds' | 'express' | 'bare';
/** One run's figures: name -> value per column (absent where it does not apply). */
type Figures = Record<string, Partial<Record<Column, number>>>;

let hups = 0;
process.on('SIGHUP', () => {
  hups++;
});

function progress(msg: string): void {
  process.stderr.write(`  ${msg}\n`);
}

function lineCount(file: string): number {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

async function waitForLines(file: string, want: number, ms: number): Promise<number> {
  const until = performance.now() + ms;
  let n = lineCount(file);
  while (n < want && performance.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    n = lineCount(file);
  }
  return n;
}

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

function record(f: Figures, col: Column, name: string, v: number): void {
  (f[name] ??= {})[col] = v;
}

function recordLoad(f: Figures, col: Column, prefix: string, r: Measured): void {
  record(f, col, `${prefix} rate`, r.rate);
  record(f, col, `${prefix} elapsed`, r.elapsedMs / 1000);
  record(f, col, `${prefix} p50`, r.latency.p50);
  record(f, col, `${prefix} p99`, r.latency.p99);
  record(f, col, `${prefix} errors`, r.errors);
  record(f, col, `${prefix} server cpu`, r.serverCpuUsPerRequest);
  record(f, col, `${prefix} loadgen cpu`, r.cpuUsPerRequest);
  if (r.errors > 0) progress(`${col} ${prefix}: ${r.errors} errors, first: ${r.firstError ?? ''}`);
}

/**
 * One run. The three servers (mdserver and both floors) run side by side, idle but for the one
 * being measured, and every load is applied to the floors immediately before and after mdserver:
 * other work on the machine drifts over minutes, so ratios between neighbours in time are the
 * figures least disturbed by it.
 */
/** Waits until the server at `port` answers /metrics with 404: the reload has turned them off. */
async function metricsOff(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const status = await new Promise<number>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/metrics', localAddress: HOST, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
    });
    if (status === 404) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the reload did not turn the metrics off');
}

async function oneRun(o: Options, n: number, gen: LoadGen): Promise<Figures> {
  const f: Figures = {};
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdserver-bench-'));
  const port = await freePort();
  const b = writeBenchDir(dir, port, process.pid);
  const out = path.join(dir, 'server.out');
  const nodeArgs = [...o.nodeArgs, ...(o.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'profiles')}`] : [])];
  progress(`run ${n}: ${dir}`);
  const fixed = (p: number, sources: string[], extra: Partial<FixedJob> = {}): FixedJob => ({
    kind: 'fixed', port: p, method: 'GET', path: '/latest/meta-data/instance-id', sources, concurrency: CONCURRENCY,
    perConnection: PER_CONNECTION, warmupMs: o.warmupMs, durationMs: o.durationMs, maxRequests: 500_000, ...extra,
  });

  const floors: Partial<Record<Column, Served>> = {};
  let server: Served | null = null;
  try {
    for (const col of ['express', 'bare'] as const) {
      const fport = await freePort();
      const fl = await serve([path.join('dist', 'bench', 'floor.js'), col, String(fport)], fport, { path: '/', from: HOST }, out);
      floors[col] = fl;
      record(f, col, 'startup', fl.startupMs);
      record(f, col, 'rss at start', memory(fl.child.pid as number).rssMiB);
    }
    server = await serve(['bin/mdserver', b.configFile], port, { path: '/service/name', from: HOST }, out, nodeArgs);
    const mds = server;
    /** Runs `job(col, port)` on express, mdserver and bare node, in that order. */
    const trio = async (name: string, job: (col: Column, port: number) => Job): Promise<Measured> => {
      let mine: Measured | null = null;
      for (const col of ['express', 'mds', 'bare'] as const) {
        const target = col === 'mds' ? mds : (floors[col] as Served);
        const r = await gen.run(job(col, target.port), target.child.pid as number);
        // The floors answer every upload with 200 (mdserver's 201 means "created").
        if (col !== 'mds' && name === 'upload') r.errors = 0;
        recordLoad(f, col, name, r);
        if (col === 'mds') mine = r;
      }
      return mine as unknown as Measured;
    };

    const hups0 = hups;
    const up = await trio('upload', (_col, p) => ({ kind: 'upload', port: p, first: 0, count: o.instances, concurrency: UPLOAD_CONCURRENCY, from: HOST }));
    record(f, 'mds', 'upload first', up.firstThousandRate ?? NaN);
    record(f, 'mds', 'upload last', up.lastThousandRate ?? NaN);
    const addresses = up.addresses ?? [];
    const listed = Math.min(await waitForLines(b.dhcpHosts, o.instances, 5000), lineCount(b.dnsHosts));
    record(f, 'mds', 'upload listed', listed);
    record(f, 'mds', 'upload hups', hups - hups0);
    progress(`uploads: ${fmt(up.rate)}/s (first 1000 ${fmt(up.firstThousandRate ?? NaN)}/s, last ${fmt(up.lastThousandRate ?? NaN)}/s), ${listed} hosts in the dnsmasq files, ${hups - hups0} HUPs`);
    if (addresses.length < o.instances) throw new Error(`only ${addresses.length} of ${o.instances} uploads succeeded: ${up.firstError ?? ''}`);

    // A host coming up: its VMs boot at once, each on a cold cache entry. The floors get the
    // same number of requests per VM, with the same one-connection-per-request pattern.
    const vms = shuffle([...addresses]).slice(0, o.bootVms);
    let perVm = 41;
    const boot = await trio('boot', (col, p): Job =>
      col === 'mds' ? { kind: 'boot', port: p, sources: vms, concurrency: CONCURRENCY } : { kind: 'replay', port: p, sources: vms, concurrency: CONCURRENCY, perVm });
    perVm = Math.round(boot.perVm ?? perVm);
    progress(`boot storm: ${o.bootVms} VMs x ${fmt(boot.perVm ?? NaN)} requests in ${fmt(boot.elapsedMs / 1000)} s, ${fmt(boot.rate)} req/s, p99 ${fmt(boot.latency.p99)} ms, ${boot.errors} errors (express floor ${fmt(f['boot rate']?.express ?? NaN)} req/s)`);

    const spread = shuffle([...addresses]);
    for (const [name, p] of [['leaf', '/latest/meta-data/instance-id'], ['listing', '/latest/meta-data/'], ['userdata', '/latest/user-data']] as const) {
      const r = await trio(name, (_col, fp) => fixed(fp, spread, { path: p }));
      progress(`${name}: ${fmt(r.rate)} req/s, p50 ${fmt(r.latency.p50)} ms, p99 ${fmt(r.latency.p99)} ms (express floor ${fmt(f[`${name} rate`]?.express ?? NaN)} req/s)`);
    }
    // The same leaf load with the metrics off (a reload): what counting every request costs.
    // Measured right after the leaf with them on, so that the two see the same machine.
    fs.writeFileSync(b.localConf, '[mdserver]\nmetrics = no\n');
    process.kill(mds.child.pid as number, 'SIGHUP');
    await metricsOff(port);
    const off = await gen.run(fixed(port, spread), mds.child.pid as number);
    record(f, 'mds', 'leaf nometrics rate', off.rate);
    record(f, 'mds', 'leaf nometrics server cpu', off.serverCpuUsPerRequest);
    record(f, 'mds', 'leaf metrics ratio', (f['leaf rate']?.mds ?? NaN) / off.rate);
    progress(`leaf with metrics off: ${fmt(off.rate)} req/s (on: ${fmt(f['leaf rate']?.mds ?? NaN)} req/s)`);
    for (const col of ['express', 'mds', 'bare'] as const) {
      const mem = memory((col === 'mds' ? mds : (floors[col] as Served)).child.pid as number);
      record(f, col, 'rss', mem.rssMiB);
      record(f, col, 'rss peak', mem.peakMiB);
    }
    // What a host holding this many instances keeps between boot storms: V8 returns the garbage
    // of a storm to the system once it sees the process idle for a while.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    for (const col of ['express', 'mds', 'bare'] as const) {
      record(f, col, 'rss settled', memory((col === 'mds' ? mds : (floors[col] as Served)).child.pid as number).rssMiB);
    }
    await mds.stop();
    server = null;
    record(f, 'mds', 'upload listed at exit', Math.min(lineCount(b.dhcpHosts), lineCount(b.dnsHosts)));

    const startups: number[] = [];
    for (let i = 0; i < o.startups; i++) {
      server = await serve(['bin/mdserver', b.configFile], port, { path: '/latest/meta-data/instance-id', from: addresses[i] as string }, out, o.nodeArgs);
      startups.push(server.startupMs);
      if (i === 0) record(f, 'mds', 'rss at start', memory(server.child.pid as number).rssMiB);
      await server.stop();
      server = null;
    }
    record(f, 'mds', 'startup', median(startups));
    progress(`start-up with ${o.instances} instances: ${startups.map((s) => fmt(s)).join(', ')} ms`);
  } finally {
    await server?.stop();
    for (const fl of Object.values(floors)) await fl.stop();
  }
  if (!o.keep) fs.rmSync(dir, { recursive: true, force: true });
  else progress(`kept ${dir}${o.profile ? ` (profiles in ${path.join(dir, 'profiles')})` : ''}`);
  return f;
}

interface RowSpec {
  label: string;
  key: string;
  /** Higher is better (rates) or lower is better (times, memory). */
  higher: boolean;
  /** The issue's target, as text and as a check on the medians. */
  target?: { text: string; met: (mds: number, ratioExpress: number, all: Map<string, number>) => boolean };
  noRatio?: boolean;
}

const ROWS: RowSpec[] = [
  { label: '1 leaf GET req/s', key: 'leaf rate', higher: true, target: { text: '>= 85% express', met: (_m, r) => r >= 0.85 } },
  { label: '1 leaf GET req/s, metrics off', key: 'leaf nometrics rate', higher: true, noRatio: true },
  { label: '1 leaf, metrics on / off', key: 'leaf metrics ratio', higher: true, noRatio: true },
  { label: '1 leaf p50 ms', key: 'leaf p50', higher: false },
  { label: '1 leaf p99 ms', key: 'leaf p99', higher: false },
  { label: '1 listing GET req/s', key: 'listing rate', higher: true, target: { text: '>= 85% express', met: (_m, r) => r >= 0.85 } },
  { label: '1 listing p50 ms', key: 'listing p50', higher: false },
  { label: '1 listing p99 ms', key: 'listing p99', higher: false },
  { label: '2 user-data req/s', key: 'userdata rate', higher: true, target: { text: '>= 70% express', met: (_m, r) => r >= 0.7 } },
  { label: '2 user-data p50 ms', key: 'userdata p50', higher: false },
  { label: '2 user-data p99 ms', key: 'userdata p99', higher: false },
  { label: '3 boot storm total s', key: 'boot elapsed', higher: false },
  { label: '3 boot storm req/s', key: 'boot rate', higher: true, target: { text: '>= 60% express', met: (_m, r) => r >= 0.6 } },
  { label: '3 boot storm p50 ms', key: 'boot p50', higher: false },
  { label: '3 boot storm p99 ms', key: 'boot p99', higher: false, target: { text: '< 50 ms', met: (m) => m < 50 } },
  { label: '3 boot storm errors', key: 'boot errors', higher: false, noRatio: true, target: { text: '0', met: (m) => m === 0 } },
  { label: '4 uploads/s (all)', key: 'upload rate', higher: true, target: { text: '>= 500/s', met: (m) => m >= 500 } },
  { label: '4 uploads/s first 1000', key: 'upload first', higher: true, noRatio: true },
  { label: '4 uploads/s last 1000', key: 'upload last', higher: true, noRatio: true, target: { text: '>= first / 1.5', met: (m, _r, all) => m >= (all.get('upload first') ?? Infinity) / 1.5 } },
  { label: '4 upload p99 ms', key: 'upload p99', higher: false },
  { label: '4 hosts in dnsmasq files', key: 'upload listed', higher: true, noRatio: true },
  { label: '4 dnsmasq rewrites (HUPs)', key: 'upload hups', higher: false, noRatio: true },
  { label: '5 RSS MiB after the loads', key: 'rss', higher: false },
  { label: '5 RSS MiB settled (idle 15 s)', key: 'rss settled', higher: false, target: { text: '< 150 MB', met: (m) => m * 1.048576 < 150 } },
  { label: '5 peak RSS MiB', key: 'rss peak', higher: false, noRatio: true },
  { label: '5 RSS MiB just started', key: 'rss at start', higher: false },
  { label: '5 start-up ms (to 1st answer)', key: 'startup', higher: false, target: { text: '< 1500 ms', met: (m) => m < 1500 } },
  { label: 'server CPU us/req, leaf', key: 'leaf server cpu', higher: false },
  { label: 'server CPU us/req, leaf, metrics off', key: 'leaf nometrics server cpu', higher: false, noRatio: true },
  { label: 'server CPU us/req, listing', key: 'listing server cpu', higher: false },
  { label: 'server CPU us/req, user-data', key: 'userdata server cpu', higher: false },
  { label: 'server CPU us/req, boot', key: 'boot server cpu', higher: false },
  { label: 'server CPU us/req, upload', key: 'upload server cpu', higher: false },
  { label: 'loadgen CPU us/req, keep-alive', key: 'leaf loadgen cpu', higher: false },
  { label: 'loadgen CPU us/req, boot', key: 'boot loadgen cpu', higher: false },
];

function report(o: Options, runs: Figures[]): string {
  const med = (key: string, col: Column): number => median(runs.map((r) => r[key]?.[col] ?? NaN));
  const spread = (key: string): string => {
    const v = runs.map((r) => r[key]?.mds ?? NaN).filter(Number.isFinite);
    return v.length > 1 ? `${fmt(Math.min(...v))}..${fmt(Math.max(...v))}` : '';
  };
  // Ratios are taken within each run (server and floors measured minutes apart on the same
  // machine), then their median: less sensitive to load that others put on the machine meanwhile.
  const ratio = (key: string, col: Column, higher: boolean): number =>
    median(runs.map((r) => {
      const m = r[key]?.mds ?? NaN;
      const fl = r[key]?.[col] ?? NaN;
      return higher ? m / fl : fl / m;
    }));
  const medians = new Map(ROWS.map((row) => [row.key, med(row.key, 'mds')]));
  const rows = ROWS.map((row) => {
    const m = med(row.key, 'mds');
    const rx = row.noRatio ? NaN : ratio(row.key, 'express', row.higher);
    const rb = row.noRatio ? NaN : ratio(row.key, 'bare', row.higher);
    const met = row.target ? (row.target.met(m, rx, medians) ? 'yes' : 'MISSED') : '';
    return [row.label, fmt(m), o.runs > 1 ? spread(row.key) : '', fmt(med(row.key, 'express')), fmt(med(row.key, 'bare')), pct(rx), pct(rb), row.target?.text ?? '', met];
  });
  const ceiling = 1e6 / med('leaf loadgen cpu', 'bare');
  const lines = [
    table(['figure', 'mdserver', 'min..max', 'express', 'node', 'vs express', 'vs node', 'target', 'met'], rows),
    '',
    `Ratios are "as good as the floor" fractions (for times and memory: floor / mdserver), medians of per-run ratios.`,
    `Load generator ceiling: ${fmt(ceiling)} req/s per core of its own (keep-alive, against bare node, which it drove at ${fmt(med('leaf rate', 'bare'))} req/s).`,
    `${runs.length} run(s), ${o.instances} instances, ${o.bootVms} booting VMs, ${CONCURRENCY} in flight; node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}.`,
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (process.argv.includes('--cluster')) {
    await clusterBench(process.argv.slice(2));
    return;
  }
  const o = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(path.join(ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('build first: npx tsc -p tsconfig.json');
  process.stderr.write(`mdserver benchmark: ${o.runs} run(s) of ${o.instances} instances (load average ${os.loadavg()[0]?.toFixed(2)})\n`);
  const gen = new LoadGen();
  const runs: Figures[] = [];
  try {
    for (let i = 1; i <= o.runs; i++) runs.push(await oneRun(o, i, gen));
  } finally {
    gen.close();
  }
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ options: o, runs }, null, 2));
  process.stdout.write(report(o, runs) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
