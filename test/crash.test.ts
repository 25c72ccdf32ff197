// A power cut's little sibling: kill -9 in the middle of an upload storm loses nothing that was
// acknowledged, and the restarted server rebuilds dnsmasq's files from the database.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { SqliteStore } from '../src/store/sqlite.js';
import { freePort, startChild } from './child.js';
import { domainXml, request, tempDir, writeConfig } from './helpers.js';

test('kill -9 during an upload storm: every acknowledged upload survives, no address is given twice', async (t) => {
  const dir = tempDir();
  const port = freePort();
  const conf = writeConfig(dir, { mdserver: { port } });
  const first = await startChild(conf, port);
  const acked = new Map<string, string>();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  let next = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      const i = next++;
      const name = `storm${i}`;
      const body = domainXml({ name, uuid: `0e0e0e0e-0000-0000-0000-${String(i).padStart(12, '0')}`, mac: `52:54:00:0e:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` });
      try {
        const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/instance-upload', agent }, (res) => {
            let b = '';
            res.on('data', (d: Buffer) => (b += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
            res.on('error', reject);
          });
          req.on('error', reject);
          req.end(body);
        });
        if (reply.status === 201) acked.set(name, /ipv4=(\S+)/.exec(reply.body)![1]!);
      } catch {
        return; // the server is gone
      }
    }
  };
  const workers = Array.from({ length: 16 }, worker);
  await new Promise((r) => setTimeout(r, 1500));
  first.proc.kill('SIGKILL');
  await first.stop();
  stop = true;
  await Promise.all(workers);
  agent.destroy();
  assert.ok(acked.size > 50, `enough uploads were acknowledged before the kill (${acked.size})`);

  const second = await startChild(conf, port);
  try {
    for (const [name, ip] of acked) {
      const r = await request(port, '/latest/meta-data/hostname', { from: ip });
      assert.equal(r.body, name, `${name} at ${ip}`);
    }
  } finally {
    assert.equal(await second.stop(), 0);
  }
  const store = new SqliteStore(path.join(dir, 'mdserver.db'));
  try {
    const all = store.all();
    t.diagnostic(`${acked.size} uploads acknowledged before kill -9; ${all.length} records after restart`);
    assert.ok(all.length >= acked.size);
    assert.equal(new Set(all.map((i) => i.ipv4)).size, all.length, 'no address given twice');
    const lines = fs.readFileSync(path.join(dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts'), 'utf8').trim().split('\n');
    assert.deepEqual(
      lines.sort(),
      all.map((i) => `${i.mac},id:*,${i.ipv4},${i.hostName},86400`).sort(),
      'the dhcp-hosts file matches the database after the restart',
    );
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
