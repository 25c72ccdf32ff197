// A hostile maximum-size upload must not hold up the VMs: its XML is parsed off the event loop,
// so a metadata request made meanwhile is answered at once, not after the parse.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDomainXml } from '../src/libvirt/domain.js';
import { hostileDomainXml, request, withVms, type Reply } from './helpers.js';

const DEFAULT_LIMIT = 256 * 1024;
const ATTACKER = { name: 'attacker', uuid: 'a77ac4e2-0000-4000-8000-000000000001', mac: '52:54:00:a7:7a:01' };
const VICTIM = { name: 'victim', uuid: 'a77ac4e2-0000-4000-8000-000000000002', mac: '52:54:00:a7:7a:02' };

const post = (port: number, body: string): Promise<Reply> => request(port, '/instance-upload', { method: 'POST', body });

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

test('a VM is answered while a hostile 256 KiB upload is parsed, not after it', async () => {
  await withVms({}, [VICTIM], async (srv, ip) => {
    const hostile = hostileDomainXml(DEFAULT_LIMIT, ATTACKER);
    assert.ok(hostile.length <= DEFAULT_LIMIT && hostile.length > DEFAULT_LIMIT - 16, `${hostile.length} bytes`);
    // What the parse costs on this machine right now, on this thread: how long every request
    // would wait if the server parsed it on its event loop. The bound below is relative to it, so
    // that a loaded machine (slower parse, slower requests) does not make the test flaky.
    const t0 = performance.now();
    parseDomainXml(hostile, { network: 'mds', bridge: 'br-mds' });
    const parseMs = performance.now() - t0;
    assert.ok(parseMs > 100, `the hostile document parses in ${parseMs.toFixed(0)} ms: too cheap to prove anything`);

    let done = false;
    const uploaded = post(srv.port, hostile).finally(() => (done = true));
    const latencies: number[] = [];
    while (!done) {
      const t = performance.now();
      const r = await request(srv.port, '/latest/meta-data/instance-id', { from: ip });
      latencies.push(performance.now() - t);
      assert.equal(r.status, 200);
      assert.equal(r.body, `i-${ip}`);
      await new Promise((res) => setTimeout(res, 5));
    }
    const up = await uploaded;
    assert.equal(up.status, 201, up.body);
    assert.match(up.body, /^registered attacker /);

    const sorted = [...latencies].sort((a, b) => a - b);
    const max = sorted[sorted.length - 1] ?? NaN;
    const summary = `parse ${parseMs.toFixed(0)} ms; ${latencies.length} requests during the upload, median ${percentile(sorted, 0.5).toFixed(1)} ms, max ${max.toFixed(1)} ms`;
    assert.ok(latencies.length >= 3, `requests went on during the upload: ${summary}`);
    // Blocked, one request would wait about the whole parse. Not blocked, each waits only for its
    // share of two cores: under 50 ms on a quiet machine, and far below the parse time on a busy one.
    assert.ok(max < Math.max(50, parseMs / 4), `no request waited for the parse: ${summary}`);
    assert.ok(percentile(sorted, 0.5) < 50, `a typical request was not delayed: ${summary}`);
  });
});

test('the default upload limit is 256 KiB: one byte more is a 413 and nothing is stored', async () => {
  await withVms({}, [], async (srv) => {
    const body = hostileDomainXml(DEFAULT_LIMIT, ATTACKER);
    // Whitespace after the root element: still a well-formed document, one byte too long.
    const over = body + '\n'.repeat(DEFAULT_LIMIT + 1 - body.length);
    assert.equal(Buffer.byteLength(over), DEFAULT_LIMIT + 1);
    const r = await post(srv.port, over);
    assert.equal(r.status, 413);
    assert.equal(r.body, `Request body too large: the limit is ${DEFAULT_LIMIT} bytes`);
    assert.equal(srv.running.services.registry.count(), 0);
  });
});
