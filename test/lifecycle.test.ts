// Running the real command: it serves, and SIGTERM/SIGINT stop it cleanly with exit status 0.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { domainXml, request, tempDir, VM1, writeConfig } from './helpers.js';
import { waitFor } from './netns.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mdserver');

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`bin/mdserver serves metadata and exits 0 on ${signal}, finishing a request in flight`, async () => {
    const dir = tempDir();
    const port = 20000 + Math.floor(Math.random() * 20000);
    const conf = writeConfig(dir, { mdserver: { port } });
    const child = spawn(BIN, [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor('the server to listen', () => out.includes('listening'), 10000);
      const up = await request(port, '/instance-upload', { method: 'POST', body: domainXml(VM1) });
      assert.equal(up.status, 201);
      const ip = /ipv4=(\S+)/.exec(up.body)![1]!;
      assert.equal((await request(port, '/latest/meta-data/hostname', { from: ip })).body, 'test1');
      // A slow upload is in flight, half its body sent, when the signal comes.
      const body = domainXml({ ...VM1, name: 'late', uuid: 'dddddddd-0000-0000-0000-000000000001', mac: '52:54:00:00:dd:01' });
      const half = Math.floor(body.length / 2);
      const inflight = new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/instance-upload', headers: { 'Content-Length': String(Buffer.byteLength(body)) } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.write(body.slice(0, half));
        setTimeout(() => req.end(body.slice(half)), 500);
      });
      await new Promise((r) => setTimeout(r, 200));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      child.kill(signal);
      assert.equal(await inflight, 201);
      assert.equal(await exited, 0);
      assert.match(out, /stopped/);
    } finally {
      child.kill('SIGKILL');
    }
  });
}
