// Random paths, methods, headers and bodies from random sources for a bounded time: no 5xx, no
// crash, and the server's memory stays bounded.

import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { freePort, startChild } from './child.js';
import { request, tempDir, upload, VM1, writeConfig } from './helpers.js';

/** A small deterministic PRNG, so that a failure can be replayed from the printed seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEGMENTS = ['', 'latest', '2009-04-04', '2021-03-23', 'meta-data', 'user-data', 'dynamic', 'instance-identity', 'document',
  'public-keys', '0', '1', '99', 'openssh-key', 'network', 'interfaces', 'macs', 'placement', 'api', 'token', 'service',
  'configuration', 'instance-upload', 'health', 'tags', 'instance', '..', '.', '%2e%2e', '%2F', '%00', '%ff', '%', '~', 'a'.repeat(300)];
const METHODS = ['GET', 'GET', 'GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE'];

test('a bounded fuzz run never gets a 5xx, never crashes the server, and memory stays bounded', async (t) => {
  const seed = Number(process.env['FUZZ_SEED'] ?? Date.now() % 100000);
  const rand = prng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)] as T;
  const dir = tempDir();
  const port = freePort();
  const conf = writeConfig(dir, { mdserver: { port }, loglevels: { base: 'error' } });
  const srv = await startChild(conf, port);
  const counts = new Map<number, number>();
  try {
    const vm = await upload(port, VM1);
    const sources = [vm, '127.1.0.1', '127.1.99.99', '127.0.0.1', '127.9.9.9'];
    const agents = new Map(sources.map((s) => [s, new http.Agent({ keepAlive: true, localAddress: s })]));
    const one = (): Promise<void> => {
      const segs = Array.from({ length: 1 + Math.floor(rand() * 6) }, () => pick(SEGMENTS));
      const headers: Record<string, string> = {};
      if (rand() < 0.3) headers['X-aws-ec2-metadata-token'] = rand() < 0.5 ? 'A'.repeat(Math.floor(rand() * 80)) : Math.random().toString(36);
      if (rand() < 0.3) headers['X-aws-ec2-metadata-token-ttl-seconds'] = pick(['0', '1', '21600', '21601', '-5', 'abc', '1e3', ' 60 ', '']);
      if (rand() < 0.1) headers['X-Forwarded-For'] = '127.0.0.1';
      if (rand() < 0.1) headers['Content-Type'] = pick(['application/json', 'text/xml', 'multipart/form-data; boundary=x']);
      const method = pick(METHODS);
      const body = method === 'POST' || method === 'PUT' ? pick(['', '<domain>', '{"a":1}', 'x'.repeat(Math.floor(rand() * 5000)), '<domain><name>f</name><uuid>u</uuid></domain>']) : undefined;
      return new Promise((resolve) => {
        const req = http.request({ host: '127.0.0.1', port, method, path: '/' + segs.join('/'), headers, agent: agents.get(pick(sources)) }, (res) => {
          counts.set(res.statusCode ?? 0, (counts.get(res.statusCode ?? 0) ?? 0) + 1);
          res.resume();
          res.on('end', () => resolve());
        });
        req.on('error', () => resolve());
        req.end(body);
      });
    };
    const runFor = async (ms: number): Promise<void> => {
      const end = Date.now() + ms;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (Date.now() < end) await one();
      }));
    };
    await runFor(1500);
    const warm = srv.rssKb();
    await runFor(5000);
    const afterKb = srv.rssKb();
    for (const a of agents.values()) a.destroy();
    const fiveXX = [...counts].filter(([s]) => s >= 500);
    assert.deepEqual(fiveXX, [], `seed ${seed}: 5xx answers`);
    assert.equal(srv.proc.exitCode, null, 'the server is still running');
    assert.equal((await request(port, '/latest/meta-data/hostname', { from: vm })).body, 'test1');
    assert.ok(afterKb - warm < 64 * 1024, `seed ${seed}: RSS grew by ${afterKb - warm} kB`);
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    assert.ok(total > 500, `enough requests were made (${total})`);
    t.diagnostic(`seed ${seed}: ${total} requests, statuses ${JSON.stringify(Object.fromEntries([...counts].sort()))}, RSS ${warm} -> ${afterKb} kB`);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
