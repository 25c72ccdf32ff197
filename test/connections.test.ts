// One VM must not use up every connection: idle sockets held by a VM count against
// `max_connections_per_client` and `max_connections`, the excess is closed at once, idle ones go
// after a few seconds, and the host's uploads (over HTTP and over the admin socket) always get
// through. The namespace version with real VMs is conn-flood.test.ts.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { ConnectionCounts, effectiveTotal, parseOpenFileLimit } from '../src/net/connlimit.js';
import { domainXml, request, upload, VM1, VM2, withVms, type DomainSpec } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Held {
  sockets: net.Socket[];
  /** How many the server has closed so far. */
  closed(): number;
  destroy(): void;
}

/** Opens `n` connections from `from` that never send a byte, as a flooding VM would. */
async function hold(port: number, from: string, n: number): Promise<Held> {
  const sockets: net.Socket[] = [];
  let closed = 0;
  await Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: from });
    s.on('error', () => undefined);
    s.on('close', () => closed++);
    // Read whatever comes (a 408 before the close), so that the end of the stream is seen.
    s.resume();
    s.once('connect', () => resolve());
    s.once('close', () => resolve());
    sockets.push(s);
  })));
  return { sockets, closed: () => closed, destroy: () => sockets.forEach((s) => s.destroy()) };
}

/** Uploads over the admin socket, as the hook does when MDSERVER_SOCKET is set. */
function adminUpload(socketPath: string, spec: DomainSpec): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method: 'POST', path: '/instance-upload', headers: { 'Content-Type': 'application/xml' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(domainXml(spec));
  });
}

const VM3: DomainSpec = { name: 'test3', uuid: '3c3c3c3c-0000-0000-0000-000000000003', mac: '52:54:00:3c:3c:03' };
const VM4: DomainSpec = { name: 'test4', uuid: '4c4c4c4c-0000-0000-0000-000000000004', mac: '52:54:00:4c:4c:04' };

test('the counts refuse past either cap and free a slot on close', () => {
  const c = new ConnectionCounts();
  const caps = { perClient: 2, total: 3 };
  assert.equal(c.open('a', caps), 'ok');
  assert.equal(c.open('a', caps), 'ok');
  assert.equal(c.open('a', caps), 'client');
  assert.equal(c.open('b', caps), 'ok');
  assert.equal(c.open('c', caps), 'total');
  c.close('a');
  assert.equal(c.open('c', caps), 'ok');
  for (const k of ['a', 'b', 'c']) c.close(k);
  assert.equal(c.count(), 0);
  assert.equal(c.clients, 0, 'a client without open connections has no entry');
});

test('the total cap stays below the open-file limit', () => {
  assert.equal(parseOpenFileLimit('Max cpu time              unlimited            unlimited            seconds\nMax open files            1024                 524288               files\n'), 1024);
  assert.equal(parseOpenFileLimit('Max open files            unlimited            unlimited            files\n'), null);
  assert.equal(effectiveTotal(4096, 1024), 896);
  assert.equal(effectiveTotal(4096, 524288), 4096);
  assert.equal(effectiveTotal(4096, null), 4096);
});

test('a VM holding 40 idle connections keeps 32; the rest are closed at once and others are still served', async () => {
  await withVms({}, [VM1, VM2], async (srv, flooder, other) => {
    const flood = await hold(srv.port, flooder, 40);
    try {
      await sleep(500);
      assert.equal(flood.closed(), 8, 'the 8 past max_connections_per_client = 32 were closed');
      assert.equal((await request(srv.port, '/latest/meta-data/instance-id', { from: other })).body, `i-${other}`);
      assert.match((await request(srv.port, '/instance-upload', { method: 'POST', body: domainXml(VM3) })).body, /^registered test3/);
      // The flooder's next connection is closed too; once one of its own closes, it may open one.
      const more = await hold(srv.port, flooder, 1);
      await sleep(200);
      assert.equal(more.closed(), 1);
      flood.sockets.find((s) => !s.destroyed)?.destroy();
      await sleep(200);
      const r = await request(srv.port, '/latest/meta-data/instance-id', { from: flooder });
      assert.equal(r.status, 200);
    } finally {
      flood.destroy();
    }
  });
});

test('past max_connections every VM waits, but the host uploads over HTTP and over the admin socket', async () => {
  await withVms({ mdserver: { max_connections: 40 } }, [VM1, VM2, VM3], async (srv, a, b, other) => {
    const first = await hold(srv.port, a, 32);
    const second = await hold(srv.port, b, 32);
    try {
      await sleep(500);
      assert.equal(first.closed(), 0);
      assert.equal(second.closed(), 24, '8 of the second VM\'s fit under the total of 40');
      await assert.rejects(request(srv.port, '/latest/meta-data/instance-id', { from: other }), /socket hang up|ECONNRESET/);
      assert.equal((await upload(srv.port, VM4)).startsWith('127.1.'), true);
      const viaSocket = await adminUpload(srv.running.adminSocket as string, { ...VM4, metadata: { role: 'db' } });
      assert.equal(viaSocket.status, 200, viaSocket.body);
      assert.match(viaSocket.body, /^updated test4 mac=52:54:00:4c:4c:04 ipv4=127\.1\./);
    } finally {
      first.destroy();
      second.destroy();
    }
    await sleep(200);
    assert.equal((await request(srv.port, '/latest/meta-data/instance-id', { from: other })).status, 200, 'served once the flood is gone');
  });
});

test('a connection that sends nothing is closed within about 5 s, an idle keep-alive one after about 2 s', async () => {
  await withVms({}, [VM1], async (srv, ip) => {
    const started = performance.now();
    const idle = await hold(srv.port, ip, 1);
    const agent = new http.Agent({ keepAlive: true, localAddress: ip });
    try {
      let keptAt = 0;
      await new Promise<void>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port: srv.port, path: '/latest/meta-data/instance-id', agent }, (res) => {
          res.resume();
          res.on('end', () => (keptAt = performance.now()));
        });
        req.on('error', reject);
        req.on('socket', (s) => s.once('close', () => resolve()));
      });
      const keptFor = performance.now() - keptAt;
      assert.ok(keptFor > 1500 && keptFor < 3500, `the idle keep-alive connection lasted ${Math.round(keptFor)} ms`);
      while (idle.closed() === 0 && performance.now() - started < 15000) await sleep(100);
      const idleFor = performance.now() - started;
      assert.equal(idle.closed(), 1);
      assert.ok(idleFor > 4500 && idleFor < 7500, `the silent connection lasted ${Math.round(idleFor)} ms`);
    } finally {
      agent.destroy();
      idle.destroy();
    }
  });
});

test('the upload on the admin socket answers like the metadata port\'s, refusals included', async () => {
  await withVms({}, [], async (srv) => {
    const socket = srv.running.adminSocket as string;
    const ok = await adminUpload(socket, VM1);
    assert.equal(ok.status, 201);
    assert.match(ok.body, /^registered test1 mac=52:54:00:3a:cf:41 ipv4=127\.1\.\d+\.\d+\n$/);
    const bad = await adminUpload(socket, { ...VM2, network: 'default' });
    assert.equal(bad.status, 400);
    assert.match(bad.body, /^domain test2 has no interface on network "mds"/);
  });
});
