// Per-client rate limiting: a flooding VM gets 429s; a well-behaved neighbour is never limited.

import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { RateLimiter } from '../src/net/ratelimit.js';
import { request, VM1, VM2, withVms } from './helpers.js';

test('a token bucket allows its burst, then the sustained rate', () => {
  let now = 0;
  const settings = { rateLimit: 10, rateBurst: 5 };
  const rl = new RateLimiter(() => settings, () => now);
  for (let i = 0; i < 5; i++) assert.equal(rl.take('a').allowed, true);
  const first = rl.take('a');
  assert.ok(!first.allowed && first.retryAfter > 0);
  assert.equal(first.firstOfRun, true, 'the first refusal starts a run (logged once)');
  const second = rl.take('a');
  assert.ok(!second.allowed && second.retryAfter > 0);
  assert.equal(second.firstOfRun, false, 'the second refusal in a row is not new');
  assert.equal(rl.take('b').allowed, true, 'other clients have their own bucket');
  now += 100; // 10/s refills one token in 100 ms
  assert.equal(rl.take('a').allowed, true);
});

test('a flooding VM gets 429 with Retry-After while another VM keeps getting answers', async (t) => {
  await withVms({ mdserver: { rate_limit: 20, rate_burst: 40 } }, [VM1, VM2], async (srv, flooder, polite) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16, localAddress: flooder });
    const flood = async (): Promise<number[]> => {
      const statuses: number[] = [];
      const deadline = Date.now() + 2000;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (Date.now() < deadline) {
          statuses.push(await new Promise<number>((resolve, reject) => {
            http.get({ host: '127.0.0.1', port: srv.port, path: '/latest/meta-data/instance-id', agent }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            }).on('error', reject);
          }));
        }
      }));
      return statuses;
    };
    const latencies: number[] = [];
    const politeRun = async (): Promise<number[]> => {
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        statuses.push((await request(srv.port, '/latest/meta-data/instance-id', { from: polite })).status);
        latencies.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 90));
      }
      return statuses;
    };
    const [flooded, calm] = await Promise.all([flood(), politeRun()]);
    agent.destroy();
    assert.ok(flooded.filter((s) => s === 429).length > flooded.length / 2, `flooder mostly refused (${flooded.length} requests)`);
    assert.ok(flooded.filter((s) => s === 200).length >= 40, 'the burst was served');
    assert.deepEqual(new Set(calm), new Set([200]), 'the polite VM was never limited');
    latencies.sort((a, b) => a - b);
    t.diagnostic(`flooder: ${flooded.length} requests in 2 s, ${flooded.filter((s) => s === 200).length} answered, ${flooded.filter((s) => s === 429).length} refused; polite VM: 20/20 answered, median ${latencies[10]?.toFixed(1)} ms, max ${latencies[19]?.toFixed(1)} ms`);
    const r = await request(srv.port, '/latest/meta-data/instance-id', { from: flooder });
    if (r.status === 429) assert.match(String(r.headers['retry-after']), /^\d+$/);
    // The host is never limited.
    for (let i = 0; i < 60; i++) assert.equal((await request(srv.port, '/service/name')).status, 200);
  });
});
