// The load generator, run as its own process (forked by run.ts, one job per message). Every
// simulated VM connects from its own loopback source address, as a VM would from its own IP.
//
// Jobs:
//   fixed   one request shape, `concurrency` VMs in flight, each making `perConnection` requests on
//           one keep-alive connection before the next VM takes its slot; warm-up, then a timed,
//           bounded measurement.
//   boot    cloud-init's "aws" sequence per VM, one TCP connection per request as cloud-init does
//           (it opens a new requests.Session for every URL it reads).
//   replay  the same connection pattern and request count as `boot`, for servers that answer a
//           constant (the floors).
//   upload  new domains POSTed to /instance-upload from the host address, keep-alive.

import { benchDomain, domainXml } from './domain.js';
import { Connection, requestHead, type Reply } from './http1.js';
import { summarise, type LatencySummary } from './stats.js';

export interface FixedJob {
  kind: 'fixed';
  port: number;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  sources: string[];
  concurrency: number;
  perConnection: number;
  warmupMs: number;
  durationMs: number;
  maxRequests: number;
}

export interface BootJob {
  kind: 'boot';
  port: number;
  sources: string[];
  concurrency: number;
}

export interface ReplayJob {
  kind: 'replay';
  port: number;
  sources: string[];
  concurrency: number;
  perVm: number;
}

export interface UploadJob {
  kind: 'upload';
  port: number;
  first: number;
  count: number;
  concurrency: number;
  from: string;
}

export type Job = FixedJob | BootJob | ReplayJob | UploadJob;

export interface JobResult {
  requests: number;
  errors: number;
  firstError: string | null;
  elapsedMs: number;
  /** Requests (or uploads) per second over the measured part. */
  rate: number;
  latency: LatencySummary;
  /** CPU time this process spent per request in the measured part, in microseconds. */
  cpuUsPerRequest: number;
  /** boot: requests per VM; upload: rates over the first and last thousand, and the addresses. */
  perVm?: number;
  firstThousandRate?: number;
  lastThousandRate?: number;
  addresses?: string[];
}

export type Message = { event: 'measuring' } | { event: 'result'; result: JobResult } | { event: 'failed'; error: string };

class Recorder {
  latencies: number[] = [];
  errors = 0;
  firstError: string | null = null;

  error(what: string): void {
    this.errors++;
    this.firstError ??= what;
  }

  /** Records one reply; anything but `expect` is an error. */
  reply(path: string, started: number, r: Reply | Error, expect = 200): Reply | null {
    this.latencies.push(performance.now() - started);
    if (r instanceof Error) {
      this.error(`${path}: ${r.message}`);
      return null;
    }
    if (r.status !== expect) {
      this.error(`${path}: HTTP ${r.status} ${r.body.toString('utf8', 0, 200)}`);
      return null;
    }
    return r;
  }
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function finish(rec: Recorder, requests: number, elapsedMs: number, cpu: number, rateOf = requests): JobResult {
  return {
    requests,
    errors: rec.errors,
    firstError: rec.firstError,
    elapsedMs,
    rate: rateOf / (elapsedMs / 1000),
    latency: summarise(Float64Array.from(rec.latencies)),
    cpuUsPerRequest: requests > 0 ? cpu / requests : NaN,
  };
}

async function attempt(conn: Connection, head: string, body?: Buffer): Promise<Reply | Error> {
  try {
    return await conn.send(head, body);
  } catch (e) {
    return e as Error;
  }
}

async function fixed(job: FixedJob, notify: (m: Message) => void): Promise<JobResult> {
  const body = job.body === undefined ? undefined : Buffer.from(job.body);
  const head = requestHead(job.method, job.path, job.headers, body?.length);
  const rec = new Recorder();
  let next = 0;
  let measuring = false;
  let measured = 0;
  const start = performance.now();
  let measureStart = start;
  let cpuStart = 0;
  const stopAt = start + job.warmupMs + job.durationMs;

  const beginMeasuring = (): void => {
    measuring = true;
    measureStart = performance.now();
    cpuStart = cpuUs();
    notify({ event: 'measuring' });
  };
  if (job.warmupMs === 0) beginMeasuring();

  const slot = async (): Promise<void> => {
    while (performance.now() < stopAt && measured < job.maxRequests) {
      const src = job.sources[next++ % job.sources.length] as string;
      const conn = new Connection(job.port, src);
      try {
        for (let k = 0; k < job.perConnection && performance.now() < stopAt && measured < job.maxRequests; k++) {
          if (!measuring && performance.now() - start >= job.warmupMs) beginMeasuring();
          const counted = measuring;
          const t0 = performance.now();
          const r = await attempt(conn, head, body);
          if (counted) {
            measured++;
            if (rec.reply(job.path, t0, r) === null && r instanceof Error) break;
          }
          else if (r instanceof Error) break;
        }
      } finally {
        conn.close();
      }
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, slot));
  return finish(rec, measured, performance.now() - measureStart, cpuUs() - cpuStart);
}

/** url_helper.combine_url's rule: exactly one slash between the parts. */
function join(base: string, part: string): string {
  return `${base.replace(/\/+$/, '')}/${part.replace(/^\/+/, '')}`;
}

/**
 * One VM's boot, in the order of cloud-init's Ec2 datasource (crawl_metadata): token, version
 * probes, user-data, the meta-data crawl, the identity document. Version probes stop at the first 200, as cloud-init's
 * get_metadata_api_version does; the crawl reads a listing, then each sub-directory (recursively),
 * then each leaf, turning `N=name` into `N/openssh-key` and skipping security-credentials.
 */
async function boot(port: number, src: string, rec: Recorder): Promise<number> {
  let requests = 0;
  let headers: Record<string, string> = {};
  const get = async (method: string, path: string): Promise<string | null> => {
    requests++;
    const conn = new Connection(port, src);
    const t0 = performance.now();
    const r = await attempt(conn, requestHead(method, path, headers));
    conn.close();
    const ok = rec.reply(path, t0, r);
    return ok ? ok.body.toString('utf8') : null;
  };

  headers = { 'X-aws-ec2-metadata-token-ttl-seconds': '21600' };
  const token = await get('PUT', '/latest/api/token');
  if (!token) return requests;
  headers = { 'X-aws-ec2-metadata-token': token };

  let version = '2009-04-04';
  for (const v of ['2021-03-23', '2018-09-24', '2016-09-02']) {
    const id = await get('GET', `/${v}/meta-data/instance-id`);
    if (id !== null) {
      if (id !== `i-${src}`) rec.error(`${src} was told it is ${id}`);
      version = v;
      break;
    }
  }
  await get('GET', `/${version}/user-data`);

  const crawl = async (url: string): Promise<void> => {
    const listing = await get('GET', url);
    if (listing === null) return;
    const children: string[] = [];
    const leaves: string[] = [];
    for (const raw of listing.split('\n')) {
      const field = raw.trim();
      const name = field.replace(/\/+$/, '');
      if (!field || !name || name === 'security-credentials') continue;
      if (field.endsWith('/')) {
        if (!children.includes(name)) children.push(name);
        continue;
      }
      const eq = field.indexOf('=');
      leaves.push(eq > 0 && /^\d+$/.test(field.slice(0, eq)) ? `${field.slice(0, eq)}/openssh-key` : field);
    }
    for (const c of children) await crawl(join(url, c) + '/');
    for (const l of leaves) await get('GET', join(url, l));
  };
  await crawl(`/${version}/meta-data/`);
  await crawl(`/${version}/dynamic/instance-identity`);
  return requests;
}

async function bootStorm(job: BootJob, notify: (m: Message) => void): Promise<JobResult> {
  const rec = new Recorder();
  let next = 0;
  let requests = 0;
  notify({ event: 'measuring' });
  const cpu0 = cpuUs();
  const t0 = performance.now();
  const vm = async (): Promise<void> => {
    while (next < job.sources.length) {
      // Not `requests += await ...`: that would read `requests` before the await and lose counts.
      const n = await boot(job.port, job.sources[next++] as string, rec);
      requests += n;
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, vm));
  const r = finish(rec, requests, performance.now() - t0, cpuUs() - cpu0);
  return { ...r, perVm: requests / job.sources.length };
}

async function replay(job: ReplayJob, notify: (m: Message) => void): Promise<JobResult> {
  const rec = new Recorder();
  const head = requestHead('GET', '/latest/meta-data/instance-id');
  let next = 0;
  let requests = 0;
  notify({ event: 'measuring' });
  const cpu0 = cpuUs();
  const t0 = performance.now();
  const vm = async (): Promise<void> => {
    while (next < job.sources.length) {
      const src = job.sources[next++] as string;
      for (let k = 0; k < job.perVm; k++) {
        requests++;
        const conn = new Connection(job.port, src);
        const started = performance.now();
        const r = await attempt(conn, head);
        conn.close();
        rec.reply('replay', started, r);
      }
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, vm));
  return finish(rec, requests, performance.now() - t0, cpuUs() - cpu0);
}

async function upload(job: UploadJob, notify: (m: Message) => void): Promise<JobResult> {
  const rec = new Recorder();
  const done: number[] = [];
  const addresses: string[] = new Array<string>(job.count);
  let next = 0;
  notify({ event: 'measuring' });
  const cpu0 = cpuUs();
  const t0 = performance.now();
  const slot = async (): Promise<void> => {
    let conn = new Connection(job.port, job.from);
    try {
      while (next < job.count) {
        const i = next++;
        const body = Buffer.from(domainXml(benchDomain(job.first + i)));
        const head = requestHead('POST', '/instance-upload', { 'Content-Type': 'application/xml' }, body.length);
        const started = performance.now();
        const r = await attempt(conn, head, body);
        const ok = rec.reply('/instance-upload', started, r, 201);
        done.push(performance.now());
        const m = ok ? /ipv4=(\S+)/.exec(ok.body.toString('utf8')) : null;
        if (m) addresses[i] = m[1] as string;
        if (r instanceof Error) {
          conn.close();
          conn = new Connection(job.port, job.from);
        }
      }
    } finally {
      conn.close();
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, slot));
  const elapsed = performance.now() - t0;
  const r = finish(rec, job.count, elapsed, cpuUs() - cpu0);
  const k = Math.min(1000, done.length);
  const firstSpan = (done[k - 1] ?? NaN) - t0;
  const lastSpan = (done[done.length - 1] ?? NaN) - (done[done.length - 1 - k] ?? t0);
  return {
    ...r,
    firstThousandRate: k / (firstSpan / 1000),
    lastThousandRate: k / (lastSpan / 1000),
    addresses: addresses.filter((a) => a !== undefined),
  };
}

export async function runJob(job: Job, notify: (m: Message) => void = () => undefined): Promise<JobResult> {
  switch (job.kind) {
    case 'fixed':
      return fixed(job, notify);
    case 'boot':
      return bootStorm(job, notify);
    case 'replay':
      return replay(job, notify);
    case 'upload':
      return upload(job, notify);
  }
}

// As a forked child: run each job sent by the parent and send back its result.
if (process.send) {
  const send = (m: Message): void => {
    process.send?.(m);
  };
  process.on('message', (job: Job) => {
    runJob(job, send).then(
      (result) => send({ event: 'result', result }),
      (e: unknown) => send({ event: 'failed', error: e instanceof Error ? e.stack ?? e.message : String(e) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
