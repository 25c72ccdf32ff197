// `npm run bench -- --cluster`: three mdserver processes as three hosts on one real PostgreSQL
// (started here in a temporary directory as the `postgres` user, as the tests do; needs root),
// seeded with N instances. Measures each host's start-up time and resident memory, leaf requests
// against the Express floor, uploads per second across the cluster, and how long a change made on
// one host takes to be served by another while uploads arrive at a steady rate. Not a test:
// nothing here fails a build.
//
// Options: --instances N (default 100000)   --rate R uploads/s for the propagation phase (200)
//          --seconds S of that phase (5)   --uploads U for the throughput phase (3000)
//          --profile DIR: each host writes V8 CPU profiles into DIR/host-a etc. when it stops (read with
//          `node dist/bench/profile.js FILE`)

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PgServer } from '../test/postgres.js';
import { benchDomain, domainXml } from './domain.js';
import type { FixedJob } from './loadgen.js';
import { freePort, LoadGen, memory, ROOT, serve, type Served } from './procs.js';
import { VM_NET } from './setup.js';
import { fmt, quantile, table } from './stats.js';
import { lockSampler, perUpload, snapshot } from './clusterProbe.js';

interface Options { instances: number; rate: number; seconds: number; uploads: number; profile: string | null }

function parseArgs(argv: string[]): Options {
  const o: Options = { instances: 100_000, rate: 200, seconds: 5, uploads: 3000, profile: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = Number(argv[++i]);
    if (a === '--profile') o.profile = path.resolve(argv[i] ?? '.');
    else if (a === '--instances') o.instances = v;
    else if (a === '--rate') o.rate = v;
    else if (a === '--seconds') o.seconds = v;
    else if (a === '--uploads') o.uploads = v;
    else if (a !== '--cluster') throw new Error(`unknown option ${a}; see the head of bench/cluster.ts`);
    if (a === '--cluster') i--;
  }
  return o;
}

/** The address of seeded instance i: 127.64.0.0/10 from .0.10 on. */
const seededIp = (i: number): string => {
  const n = (127 << 24) + (64 << 16) + 10 + i;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
};

async function seed(pg: PgServer, n: number): Promise<void> {
  // The schema as mdserver makes it: one host started and stopped on the empty database.
  const { PgStore } = await import('../src/store/postgres.js');
  await (await PgStore.open({ url: pg.url(), password: null, host: 'seed' })).close();
  await pg.sql(`INSERT INTO instances (uuid, name, host_key, mac, ipv4, location, metadata, host, first_seen, last_update, version)
    SELECT format('5eed0000-0000-4000-8000-%s', lpad(to_hex(i), 12, '0')), 'seed-' || i, 'seed-' || i,
      format('52:54:01:%s:%s:%s', lpad(to_hex((i >> 16) & 255), 2, '0'), lpad(to_hex((i >> 8) & 255), 2, '0'), lpad(to_hex(i & 255), 2, '0')),
      host(inet '127.64.0.0' + 10 + i), 'rack1', '{"role":"worker"}', 'seed', 0, 0, 1
    FROM generate_series(0, $1 - 1) AS i`, [n]);
  await pg.sql('UPDATE cluster SET counter = 1');
}

function hostConfig(dir: string, port: number, url: string, name: string): string {
  fs.mkdirSync(path.join(dir, 'userdata'), { recursive: true });
  const file = path.join(dir, 'mdserver.conf');
  fs.writeFileSync(file, `[mdserver]\nport = ${port}\nlisten_address = 127.0.0.1\nuserdata_dir = ${dir}/userdata\ndb_file = ${dir}/unused.db\nlogfile =\nadmin_socket = no
[dnsmasq]\nnet_address = ${VM_NET.address}\nnet_prefix = ${VM_NET.prefix}\ngateway = ${VM_NET.gateway}\nbase_dir = ${dir}/dnsmasq\nrun_dir = ${dir}/run\ninterface = lo
[store]\nurl = ${url}\nhost_name = ${name}\n[loglevels]\nbase = warning\n`);
  return file;
}

/**
 * Kept-alive connections for the propagation phase's polls: a new connection every few
 * milliseconds for each VM waiting would cost the hosts more than the changes being measured.
 */
const polling = new http.Agent({ keepAlive: true, maxSockets: 1 });

function call(port: number, p: string, from: string, body?: string, agent: http.Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method: body ? 'POST' : 'GET', localAddress: from, agent,
      headers: body ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {} }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

async function upload(port: number, i: number): Promise<string> {
  const r = await call(port, '/instance-upload', '127.0.0.1', domainXml(benchDomain(i)));
  const ip = /ipv4=(\S+)/.exec(r.body)?.[1];
  if (r.status >= 300 || !ip) throw new Error(`upload ${i}: ${r.status} ${r.body}`);
  return ip;
}

/** Uploads U domains, 8 at a time per host, round robin over the hosts. */
async function throughput(hosts: Served[], count: number, first: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 8 * hosts.length }, async (_, w) => {
    const host = hosts[w % hosts.length] as Served;
    while (next < count) await upload(host.port, first + next++);
  }));
  return count / ((performance.now() - t0) / 1000);
}

/**
 * Leaf requests per second on one host of the cluster against the Express floor (bench/floor.ts),
 * the floor measured just before and after: the same load and the same ratio as the single-host
 * bench's leaf figure, with the host serving from the replicated copy of a PostgreSQL store.
 * Measured twice: first just after start-up, when the first load also pays for collecting what
 * reading 100,000 rows left in a heap of about 250 MiB (an idle host collects nothing), then
 * settled, which is the figure the target is about.
 */
async function leafRatio(host: Served, instances: number): Promise<{ first: number; mds: number; floor: number; cpuUs: number }> {
  const gen = new LoadGen();
  const fport = await freePort();
  const floor = await serve([path.join('dist', 'bench', 'floor.js'), 'express', String(fport)], fport, { path: '/', from: '127.0.0.1' }, os.devNull);
  try {
    const sources = Array.from({ length: Math.min(instances, 2000) }, (_, i) => seededIp(Math.floor((i * instances) / Math.min(instances, 2000))));
    const job = (port: number): FixedJob => ({
      kind: 'fixed', port, method: 'GET', path: '/latest/meta-data/instance-id', sources, concurrency: 64, perConnection: 50,
      warmupMs: 1000, durationMs: 3000, maxRequests: 500_000,
    });
    const first = await gen.run(job(host.port), host.child.pid as number);
    const before = await gen.run(job(fport), floor.child.pid as number);
    const mine = await gen.run(job(host.port), host.child.pid as number);
    const after = await gen.run(job(fport), floor.child.pid as number);
    for (const r of [first, mine]) if (r.errors > 0) throw new Error(`leaf requests: ${r.errors} errors, first: ${r.firstError ?? ''}`);
    return { first: first.rate, mds: mine.rate, floor: (before.rate + after.rate) / 2, cpuUs: mine.serverCpuUsPerRequest };
  } finally {
    gen.close();
    await floor.stop();
  }
}

/**
 * Uploads at `rate` per second on host k, and times how long until host k+1 serves each: from the
 * upload's answer to the first answer with the VM's instance-id, asking again every 5 ms.
 */
async function propagation(hosts: Served[], o: Options, first: number): Promise<{ delays: number[]; asks: number; firstAsk: number[] }> {
  const delays: number[] = [];
  const firstAsk: number[] = [];
  let asks = 0;
  const pending: Promise<void>[] = [];
  const total = o.rate * o.seconds;
  const t0 = performance.now();
  for (let n = 0; n < total; n++) {
    const due = t0 + (n * 1000) / o.rate;
    while (performance.now() < due) await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
    pending.push((async () => {
      const on = hosts[n % hosts.length] as Served;
      const other = hosts[(n + 1) % hosts.length] as Served;
      const ip = await upload(on.port, first + n);
      const acked = performance.now();
      for (let tries = 0; ; tries++) {
        const asked = performance.now();
        const answer = await call(other.port, '/latest/meta-data/instance-id', ip, undefined, polling);
        if (tries === 0) firstAsk.push(performance.now() - asked);
        asks++;
        if (answer.status === 200) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      delays.push(performance.now() - acked);
    })());
  }
  await Promise.all(pending);
  return { delays: delays.sort((a, b) => a - b), asks, firstAsk: firstAsk.sort((a, b) => a - b) };
}

export async function clusterBench(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  const pg = await PgServer.start();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdserver-bench-cluster-'));
  const hosts: Served[] = [];
  try {
    const s0 = performance.now();
    await seed(pg, o.instances);
    console.log(`seeded ${o.instances} instances in ${fmt((performance.now() - s0) / 1000)} s`);
    const rows: string[][] = [];
    for (const name of ['host-a', 'host-b', 'host-c']) {
      const port = await freePort();
      fs.mkdirSync(path.join(dir, name));
      const conf = hostConfig(path.join(dir, name), port, pg.url(), name);
      const prof = o.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(o.profile, name)}`] : [];
      const probe = { path: '/latest/meta-data/instance-id', from: seededIp(o.instances - 1) };
      const h = await serve([path.join(ROOT, 'bin', 'mdserver'), conf], port, probe, path.join(dir, `${name}.log`), prof);
      hosts.push(h);
    }
    await new Promise((r) => setTimeout(r, 3000));
    for (const [i, h] of hosts.entries()) rows.push([`host ${'abc'[i] ?? ''}`, fmt(h.startupMs / 1000, ' s'), fmt(memory(h.child.pid as number).rssMiB, ' MiB')]);
    console.log(table(['', 'start-up', 'RSS'], rows));
    const leaf = await leafRatio(hosts[0] as Served, o.instances);
    console.log(`leaf GET on host a: ${fmt(leaf.mds)} req/s, Express floor ${fmt(leaf.floor)} req/s: ${fmt((leaf.mds / leaf.floor) * 100)}% of the floor (${fmt(leaf.cpuUs)} us of server CPU per request; just after start-up ${fmt(leaf.first)} req/s, ${fmt((leaf.first / leaf.floor) * 100)}%)`);
    const procs = hosts.map((h) => ({ pid: h.child.pid as number, port: h.port }));
    const before = await snapshot(pg, procs);
    const locks = lockSampler(pg);
    const perSecond = await throughput(hosts, o.uploads, 1);
    const sampled = await locks.stop();
    console.log(`uploads across the cluster: ${fmt(perSecond)}/s (${o.uploads} uploads, 8 in flight per host)`);
    for (const line of perUpload(before, await snapshot(pg, procs), o.uploads, sampled)) console.log(`  ${line}`);
    // The CPU per upload at a rate the machine follows is the same whatever else runs on it: the
    // figure to compare two builds by on a shared machine (uploads as fast as they go batch more
    // per catch-up the faster they go).
    const steady = await snapshot(pg, procs);
    const steadyLocks = lockSampler(pg);
    const { delays: d, asks, firstAsk } = await propagation(hosts, o, 1 + o.uploads);
    const steadySampled = await steadyLocks.stop();
    console.log(`propagation at ${o.rate} uploads/s for ${o.seconds} s (acknowledged on one host -> served by the next): p50 ${fmt(quantile(d, 0.5))} ms, p99 ${fmt(quantile(d, 0.99))} ms, max ${fmt(d.at(-1) ?? NaN)} ms`);
    // Near one ask per change, with the first ask taking most of the delay: the next host had the
    // change before the VM asked, and what the delay measures is how long a request waits there.
    console.log(`  asks per change (again every 5 ms until answered): ${fmt(asks / d.length)}; the first ask alone: p50 ${fmt(quantile(firstAsk, 0.5))} ms, p99 ${fmt(quantile(firstAsk, 0.99))} ms`);
    for (const line of perUpload(steady, await snapshot(pg, procs), o.rate * o.seconds, steadySampled)) console.log(`  ${line}`);
    console.log('targets: start-up < 5 s, RSS < 400 MB, leaf >= 85% of the Express floor, propagation p99 < 1 s, >= 300 uploads/s');
  } catch (e) {
    // The hosts' logs go with the temporary directory: what they said about the failure is shown first.
    for (const name of ['host-a', 'host-b', 'host-c']) {
      const log = path.join(dir, `${name}.log`);
      if (fs.existsSync(log)) console.log(`${name}:\n${fs.readFileSync(log, 'utf8').split('\n').filter((l) => !/nwfilter|cannot signal/.test(l)).slice(-15).join('\n')}`);
    }
    throw e;
  } finally {
    polling.destroy();
    for (const h of hosts) await h.stop();
    pg.destroySync();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
