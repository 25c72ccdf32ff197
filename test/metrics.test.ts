// GET /metrics as Prometheus reads it: the exposition is parsed by prometheus_client's own parser
// (Debian's python3-prometheus-client), and each counter is read after the real action that moves
// it. The attackers: a VM that asks for /metrics, a proxy relaying the host's request, and a VM
// that floods made-up paths to grow the label sets.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { PYTHON, runPy } from './cloudinit.js';
import { request, startTestServer, upload, VM1, VM2, writeConfig, type TestServer } from './helpers.js';

const hasParser = spawnSync(PYTHON, ['-c', 'import prometheus_client.parser'], { encoding: 'utf8' }).status === 0;
if (!hasParser && process.env['CI'] === 'true') throw new Error('python3-prometheus-client is required under CI');
const skip = hasParser ? false : 'needs python3-prometheus-client';

interface Parsed { types: Record<string, string>; samples: [string, Record<string, string>, number | string][] }

/** The server's /metrics, through Prometheus' own parser: sample value by `name{k="v",...}`. */
async function scrape(t: TestServer): Promise<Map<string, number>> {
  const r = await request(t.port, '/metrics');
  assert.equal(r.status, 200, r.body);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return samples(runPy<Parsed>('parse_metrics.py', r.body));
}

function samples(p: Parsed): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, labels, value] of p.samples) {
    const l = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}="${v}"`).join(',');
    out.set(l ? `${name}{${l}}` : name, Number(value));
  }
  return out;
}

const get = (m: Map<string, number>, key: string): number => m.get(key) ?? 0;

/** How much each sample named in `keys` moved between two scrapes. */
function moved(before: Map<string, number>, after: Map<string, number>, keys: string[]): Record<string, number> {
  return Object.fromEntries(keys.map((k) => [k, get(after, k) - get(before, k)]));
}

describe('GET /metrics', { skip }, () => {
  let t: TestServer;
  let ip1: string;
  const dnsmasqHups: number[] = [];
  const onHup = (): void => void dnsmasqHups.push(Date.now());

  before(async () => {
    t = await startTestServer({ mdserver: { rate_limit: 5, rate_burst: 20 } });
    // This test process stands in for dnsmasq: it is a real process that gets the real SIGHUP.
    process.on('SIGHUP', onHup);
    fs.mkdirSync(path.join(t.dir, 'run-dnsmasq'), { recursive: true });
    ip1 = await upload(t.port, VM1);
  });
  after(async () => {
    process.off('SIGHUP', onHup);
    await t.close();
  });

  /** Where mdserver finds dnsmasq's process id (`<net_name>.pid` in dnsmasq's run directory). */
  const pidFile = (): string => path.join(t.dir, 'run-dnsmasq', 'mds.pid');

  test('is a valid exposition with every metric doc/operations.md names, typed as documented', async () => {
    const r = await request(t.port, '/metrics');
    const p = runPy<Parsed>('parse_metrics.py', r.body);
    for (const [name, type] of Object.entries(DOCUMENTED)) assert.equal(p.types[name], type, name);
    assert.equal(get(samples(p), 'mdserver_instances'), 1);
  });

  test('counts metadata requests by format and status class, with their latency', async () => {
    const a = await scrape(t);
    for (let i = 0; i < 3; i++) assert.equal((await request(t.port, '/latest/meta-data/instance-id', { from: ip1 })).status, 200);
    assert.equal((await request(t.port, '//latest/meta-data/nope', { from: ip1 })).status, 404);
    assert.equal((await request(t.port, '/openstack/latest/meta_data.json', { from: ip1 })).status, 200);
    assert.equal((await request(t.port, '/nocloud/meta-data', { from: ip1 })).status, 200);
    assert.equal((await request(t.port, '/latest/api/token', { method: 'PUT', from: ip1, headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } })).status, 200);
    const b = await scrape(t);
    assert.deepEqual(moved(a, b, [
      'mdserver_requests_total{format="ec2",status="2xx"}', 'mdserver_requests_total{format="ec2",status="4xx"}',
      'mdserver_requests_total{format="openstack",status="2xx"}', 'mdserver_requests_total{format="nocloud",status="2xx"}',
      'mdserver_requests_total{format="token",status="2xx"}',
    ]), {
      'mdserver_requests_total{format="ec2",status="2xx"}': 3, 'mdserver_requests_total{format="ec2",status="4xx"}': 1,
      'mdserver_requests_total{format="openstack",status="2xx"}': 1, 'mdserver_requests_total{format="nocloud",status="2xx"}': 1,
      'mdserver_requests_total{format="token",status="2xx"}': 1,
    });
    // The scrape in between is counted too (format other): 7 requests and one scrape.
    assert.equal(get(b, 'mdserver_request_duration_seconds_count') - get(a, 'mdserver_request_duration_seconds_count'), 8);
    assert.ok(get(b, 'mdserver_request_duration_seconds_sum') > get(a, 'mdserver_request_duration_seconds_sum'));
  });

  test('counts refusals by reason: unknown client, token, proxy, host path from a VM', async () => {
    const a = await scrape(t);
    assert.equal((await request(t.port, '/latest/meta-data/', { from: '127.1.99.99' })).status, 400);
    assert.equal((await request(t.port, '/latest/meta-data/', { from: ip1, headers: { 'X-aws-ec2-metadata-token': 'forged' } })).status, 401);
    assert.equal((await request(t.port, '/latest/meta-data/', { from: ip1, headers: { 'X-Forwarded-For': '10.0.0.9' } })).status, 403);
    const b = await scrape(t);
    const keys = ['unknown_client', 'token', 'proxied', 'unauthorised', 'spoofing'].map((r) => `mdserver_refusals_total{reason="${r}"}`);
    assert.deepEqual(Object.values(moved(a, b, keys)), [1, 1, 1, 0, 0]);
  });

  test('refuses /metrics to a VM and to a relayed request, and counts both refusals', async () => {
    const a = await scrape(t);
    const vm = await request(t.port, '/metrics', { from: ip1 });
    assert.equal(vm.status, 401);
    assert.doesNotMatch(vm.body, /mdserver_/);
    const relayed = await request(t.port, '/metrics', { headers: { 'X-Forwarded-For': '127.0.0.1' } });
    assert.equal(relayed.status, 403);
    assert.doesNotMatch(relayed.body, /mdserver_/);
    const b = await scrape(t);
    assert.equal(get(b, 'mdserver_refusals_total{reason="unauthorised"}') - get(a, 'mdserver_refusals_total{reason="unauthorised"}'), 1);
    assert.equal(get(b, 'mdserver_refusals_total{reason="proxied"}') - get(a, 'mdserver_refusals_total{reason="proxied"}'), 1);
  });

  test('a flood of made-up paths adds no series: labels stay bounded', async () => {
    const a = await scrape(t);
    for (let i = 0; i < 150; i++) await request(t.port, `/x${i}/${'y'.repeat(i)}?q=${i}`, { from: '127.1.77.77' });
    const b = await scrape(t);
    assert.deepEqual([...b.keys()].filter((k) => !a.has(k)), []);
    assert.ok(get(b, 'mdserver_requests_total{format="other",status="4xx"}') - get(a, 'mdserver_requests_total{format="other",status="4xx"}') >= 140);
  });

  test('counts uploads, updates and failed uploads by reason', async () => {
    const a = await scrape(t);
    await upload(t.port, VM2);
    await upload(t.port, VM2);
    const bad = await request(t.port, '/instance-upload', { method: 'POST', body: '<domain><name>x' });
    assert.equal(bad.status, 400);
    const b = await scrape(t);
    assert.deepEqual(moved(a, b, [
      'mdserver_uploads_total{result="created"}', 'mdserver_uploads_total{result="updated"}',
      'mdserver_upload_failures_total{reason="bad_domain_xml"}', 'mdserver_instances',
    ]), {
      'mdserver_uploads_total{result="created"}': 1, 'mdserver_uploads_total{result="updated"}': 1,
      'mdserver_upload_failures_total{reason="bad_domain_xml"}': 1, 'mdserver_instances': 1,
    });
  });

  test('counts dnsmasq rewrites, and a signal that cannot reach dnsmasq as a failure', async () => {
    fs.writeFileSync(pidFile(), `${process.pid}\n`);
    const a = await scrape(t);
    const signalled = dnsmasqHups.length;
    await upload(t.port, { name: 'hup1', uuid: '5a1b2c3d-0000-4000-8000-000000000001', mac: '52:54:00:00:00:a1' });
    // Rewrites are spaced (dnsmasq/files.ts), so this one may come a little after the reply.
    for (let i = 0; i < 40 && dnsmasqHups.length === signalled; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(dnsmasqHups.length, signalled + 1, 'the real SIGHUP arrived');
    const b = await scrape(t);
    assert.equal(get(b, 'mdserver_dnsmasq_events_total{event="rewrite"}') - get(a, 'mdserver_dnsmasq_events_total{event="rewrite"}'), 1);
    assert.ok(Math.abs(get(b, 'mdserver_dnsmasq_last_signal_timestamp_seconds') - Date.now() / 1000) < 30);
    // A stale pid file: the process is gone, the signal fails.
    const gone = spawnSync('true');
    fs.writeFileSync(pidFile(), `${gone.pid}\n`);
    await upload(t.port, { name: 'hup2', uuid: '5a1b2c3d-0000-4000-8000-000000000002', mac: '52:54:00:00:00:a2' });
    let c = await scrape(t);
    for (let i = 0; i < 40 && get(c, 'mdserver_dnsmasq_events_total{event="rewrite"}') === get(b, 'mdserver_dnsmasq_events_total{event="rewrite"}'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      c = await scrape(t);
    }
    assert.equal(get(c, 'mdserver_dnsmasq_events_total{event="signal_failure"}') - get(b, 'mdserver_dnsmasq_events_total{event="signal_failure"}'), 1);
    assert.equal(get(c, 'mdserver_dnsmasq_last_signal_timestamp_seconds'), get(b, 'mdserver_dnsmasq_last_signal_timestamp_seconds'));
  });

  test('counts a template that fails to render', async () => {
    const a = await scrape(t);
    fs.writeFileSync(path.join(t.dir, 'userdata', 'test1'), 'oops {{undefined_name}}');
    assert.equal((await request(t.port, '/latest/user-data', { from: ip1 })).status, 500);
    fs.rmSync(path.join(t.dir, 'userdata', 'test1'));
    const b = await scrape(t);
    assert.equal(get(b, 'mdserver_template_failures_total') - get(a, 'mdserver_template_failures_total'), 1);
  });

  test('counts provisioning outcomes and the time to ready, as the events route reports them', async () => {
    const a = await scrape(t);
    t.running.services.metrics.provisioned('ready', 41);
    t.running.services.metrics.provisioned('failed');
    const b = await scrape(t);
    assert.deepEqual(moved(a, b, [
      'mdserver_provisioning_total{outcome="ready"}', 'mdserver_provisioning_total{outcome="failed"}',
      'mdserver_provisioning_ready_seconds_count', 'mdserver_provisioning_ready_seconds_bucket{le="30"}',
      'mdserver_provisioning_ready_seconds_bucket{le="45"}',
    ]), {
      'mdserver_provisioning_total{outcome="ready"}': 1, 'mdserver_provisioning_total{outcome="failed"}': 1,
      'mdserver_provisioning_ready_seconds_count': 1, 'mdserver_provisioning_ready_seconds_bucket{le="30"}': 0,
      'mdserver_provisioning_ready_seconds_bucket{le="45"}': 1,
    });
  });

  test('is served on the admin socket too', async () => {
    const socketPath = t.running.adminSocket as string;
    const body = await new Promise<string>((resolve, reject) => {
      http.get({ socketPath, path: '/metrics' }, (res) => {
        let s = '';
        res.on('data', (c: Buffer) => (s += c.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(s) : reject(new Error(`${res.statusCode} ${s}`))));
      }).on('error', reject);
    });
    assert.ok(samples(runPy<Parsed>('parse_metrics.py', body)).has('mdserver_instances'));
  });
});

describe('GET /metrics, refusals that need their own settings', { skip }, () => {
  test('a flood past the rate limit and a caller whose MAC does not match are counted', async () => {
    const t = await startTestServer({ mdserver: { rate_limit: 1, rate_burst: 3, verify_mac: 'yes' } });
    try {
      const ip = await upload(t.port, VM1);
      // On loopback the neighbour table has no MAC for the address: to verify_mac, another machine.
      assert.equal((await request(t.port, '/latest/meta-data/', { from: ip })).status, 403);
      const codes: number[] = [];
      for (let i = 0; i < 10; i++) codes.push((await request(t.port, '/latest/meta-data/', { from: '127.1.55.55' })).status);
      assert.ok(codes.includes(429), codes.join(' '));
      const m = await scrape(t);
      assert.equal(get(m, 'mdserver_refusals_total{reason="spoofing"}'), 1);
      assert.equal(get(m, 'mdserver_refusals_total{reason="rate_limit"}'), codes.filter((c) => c === 429).length);
    } finally {
      await t.close();
    }
  });

  test('[mdserver] metrics = no: /metrics is not found and nothing is counted; a reload turns them back on', async () => {
    const t = await startTestServer({ mdserver: { metrics: 'no' } });
    try {
      const ip = await upload(t.port, VM1);
      await request(t.port, '/latest/meta-data/instance-id', { from: ip });
      assert.equal((await request(t.port, '/metrics')).status, 404);
      writeConfig(t.dir, { mdserver: { metrics: 'yes' } });
      t.running.reload();
      const m = await scrape(t);
      // The request made while they were off was not counted; only the scrape itself is.
      assert.equal(get(m, 'mdserver_requests_total{format="ec2",status="2xx"}'), 0);
    } finally {
      await t.close();
    }
  });

  test('a store that fails is counted by operation, and the caller gets a 500, not a crash', async () => {
    const t = await startTestServer();
    try {
      await upload(t.port, VM1);
      // Another program breaks the database under the running server (a real SQLite fault).
      const db = new Database(path.join(t.dir, 'mdserver.db'));
      db.exec('ALTER TABLE instances RENAME TO broken');
      db.close();
      assert.equal((await request(t.port, '/latest/meta-data/', { from: '127.1.200.1' })).status, 500);
      const m = await scrape(t);
      assert.equal(get(m, 'mdserver_store_errors_total{operation="byIPv4"}'), 1);
    } finally {
      await t.close();
    }
  });
});

/** Every metric doc/operations.md describes, with its Prometheus type. */
export const DOCUMENTED: Record<string, string> = {
  mdserver_requests: 'counter',
  mdserver_request_duration_seconds: 'histogram',
  mdserver_refusals: 'counter',
  mdserver_uploads: 'counter',
  mdserver_upload_failures: 'counter',
  mdserver_instances: 'gauge',
  mdserver_dnsmasq_events: 'counter',
  mdserver_dnsmasq_files_ok: 'gauge',
  mdserver_dnsmasq_last_signal_timestamp_seconds: 'gauge',
  mdserver_template_failures: 'counter',
  mdserver_store_errors: 'counter',
  mdserver_provisioning: 'counter',
  mdserver_provisioning_ready_seconds: 'histogram',
};
