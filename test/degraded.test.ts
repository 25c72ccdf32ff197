// When dnsmasq is not running, its pid file is stale, base_dir is unwritable or the logfile cannot
// be opened: uploads are still recorded, the problem is logged and shown on /health, and the files
// are written as soon as the directory is writable again.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { freePort, startChild } from './child.js';
import { request, tempDir, upload, VM1, VM2, writeConfig } from './helpers.js';
import { waitFor } from './netns.js';

interface Health {
  status: string;
  problems: string[];
  dnsmasq: { filesWritten: boolean };
  logfile: { writable: boolean };
}

test('uploads are recorded while dnsmasq files, dnsmasq and the logfile are all broken, and /health says what is degraded', async () => {
  const dir = tempDir();
  const port = freePort();
  // A plain file where base_dir's parent should be, a directory where the logfile should be.
  fs.writeFileSync(path.join(dir, 'blocked'), 'not a directory');
  fs.mkdirSync(path.join(dir, 'log-is-a-dir'));
  const conf = writeConfig(dir, {
    mdserver: { port, logfile: path.join(dir, 'log-is-a-dir') },
    dnsmasq: { base_dir: path.join(dir, 'blocked', 'dnsmasq') },
  });
  fs.mkdirSync(path.join(dir, 'run-dnsmasq'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'run-dnsmasq', 'mds.pid'), '999999\n'); // stale: no such process
  const srv = await startChild(conf, port);
  try {
    const ip = await upload(port, VM1);
    assert.equal((await request(port, '/latest/meta-data/hostname', { from: ip })).body, 'test1', 'the upload was recorded and is served');
    const h = JSON.parse((await request(port, '/health')).body) as Health;
    assert.equal(h.status, 'degraded');
    assert.equal(h.dnsmasq.filesWritten, false);
    assert.equal(h.logfile.writable, false);
    assert.ok(h.problems.some((p) => /dnsmasq files cannot be written/.test(p)), h.problems.join('; '));
    assert.ok(h.problems.some((p) => /stale pid file/.test(p)), h.problems.join('; '));
    assert.ok(h.problems.some((p) => /logfile .* cannot be written/.test(p)), h.problems.join('; '));
    assert.match(srv.output(), /cannot write dnsmasq files; will retry/);
    assert.match(srv.output(), /cannot write the logfile/);

    // The directory becomes writable: the retry writes every host, including later uploads.
    fs.rmSync(path.join(dir, 'blocked'));
    await upload(port, VM2);
    const hosts = path.join(dir, 'blocked', 'dnsmasq', 'dhcp', 'mds.dhcp-hosts');
    await waitFor('the dnsmasq files to be written', () => fs.existsSync(hosts) && fs.readFileSync(hosts, 'utf8').includes('test2'), 10000);
    assert.ok(fs.readFileSync(hosts, 'utf8').includes('test1'));
    assert.ok(fs.existsSync(path.join(dir, 'blocked', 'dnsmasq', 'mds.opts')), 'the options file is written too');
    const h2 = JSON.parse((await request(port, '/health')).body) as Health;
    assert.equal(h2.dnsmasq.filesWritten, true);
  } finally {
    assert.equal(await srv.stop(), 0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
