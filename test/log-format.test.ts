// `[loglevels] format = json`: what journald and Loki users read is one JSON object per line, with
// the level, the module, the message and the line's own fields; text stays the default. A bad
// value stops the server before it starts, naming the file, the key and the value.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, freePort, startChild } from './child.js';
import { request, tempDir, upload, VM1, writeConfig } from './helpers.js';

test('format = json writes every line as one JSON object with level, module, message and fields', async () => {
  const dir = tempDir();
  const port = freePort();
  const conf = writeConfig(dir, { mdserver: { port }, loglevels: { format: 'json' } });
  const child = await startChild(conf, port);
  try {
    await upload(port, VM1);
    assert.equal((await request(port, '/latest/meta-data/', { from: '127.1.222.1' })).status, 400);
  } finally {
    await child.stop();
  }
  const lines = child.output().split('\n').filter(Boolean);
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const p of parsed) {
    assert.equal(typeof p['time'], 'string');
    assert.match(String(p['level']), /^(error|warn|info|debug)$/);
    assert.match(String(p['module']), /^mdserver/);
    assert.equal(typeof p['message'], 'string');
  }
  const registered = parsed.find((p) => p['message'] === 'registered instance');
  assert.ok(registered, lines.join('\n'));
  assert.equal(registered['module'], 'mdserver.instances');
  assert.equal(registered['name'], 'test1');
  assert.equal(registered['changed'], true);
  const refused = parsed.find((p) => p['code'] === 'UNKNOWN_CLIENT');
  assert.deepEqual(refused && { level: refused['level'], client: refused['client'], message: refused['message'] },
    { level: 'warn', client: '127.1.222.1', message: 'Unknown client: 127.1.222.1' });
});

test('text stays the default', async () => {
  const dir = tempDir();
  const port = freePort();
  const child = await startChild(writeConfig(dir, { mdserver: { port } }), port);
  await child.stop();
  assert.match(child.output(), /^\S+ mdserver\.server\[INFO\]: starting mdserver /m);
});

test('a format that is neither text nor json stops the server, naming the file, the key and the value', () => {
  const dir = tempDir();
  const conf = writeConfig(dir, { loglevels: { format: 'yaml' } });
  const r = spawnSync(process.execPath, [BIN, conf], { encoding: 'utf8', timeout: 10000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, new RegExp(`${path.basename(conf)}.*format = "yaml".*expected text or json`));
});
