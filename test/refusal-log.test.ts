// Refusals in the log: one VM refused thousands of times writes one line a minute with a count,
// not one line per request; a flood of spoofed sources cannot grow the bookkeeping without bound.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import winston from 'winston';
import { RefusalLog } from '../src/http/refusalLog.js';
import type { Logger } from '../src/log.js';
import { freePort, request, tempDir, upload, VM1, writeConfig } from './helpers.js';
import { waitFor } from './netns.js';
import { spawnServer, stop } from './process.js';

/** A real winston logger whose lines land in `lines` as JSON objects. */
function capture(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const log = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] });
  return { log, lines };
}

/** Lets winston's stream transport deliver what was logged. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('the refusal log', () => {
  test('writes a client\'s first refusal, counts the rest of the minute, and puts the count in its next line', async () => {
    let now = 0;
    const { log, lines } = capture();
    const r = new RefusalLog(log, { now: () => now });
    try {
      assert.equal(r.admit('10.0.0.5'), 0);
      for (let i = 0; i < 999; i++) assert.equal(r.admit('10.0.0.5'), null);
      assert.equal(r.admit('10.0.0.6'), 0, 'another client has its own minute');
      now = 59_999;
      assert.equal(r.admit('10.0.0.5'), null);
      now = 60_000;
      assert.equal(r.admit('10.0.0.5'), 1000, 'the next minute\'s first line carries the count');
      assert.equal(r.admit('10.0.0.5'), null);
    } finally {
      r.close();
    }
    await settle();
    assert.deepEqual(lines, [], 'admit() itself writes nothing: the caller writes the refusal');
  });

  test('reports the count of a client that went quiet once its minute is over, then forgets it', async () => {
    let now = 0;
    const { log, lines } = capture();
    const r = new RefusalLog(log, { now: () => now });
    try {
      r.admit('10.0.0.5');
      for (let i = 0; i < 41; i++) r.admit('10.0.0.5');
      r.admit('10.0.0.7');
      now = 30_000;
      r.sweep();
      await settle();
      assert.deepEqual(lines, [], 'nothing before the minute is over');
      now = 61_000;
      r.sweep();
      await settle();
      assert.equal(lines.length, 1);
      assert.deepEqual(lines[0], { level: 'warn', message: 'more refusals of this client were not logged', client: '10.0.0.5', suppressed: 41, seconds: 60 });
      assert.equal(r.size, 1, 'the quiet client without a count is forgotten; the reported one starts a new minute');
      assert.equal(r.admit('10.0.0.5'), null, 'a line was just written for it: the next waits a minute');
      now = 200_000;
      r.sweep();
      assert.equal(r.size, 1, 'that refusal was counted and is reported now');
      now = 300_000;
      r.sweep();
      assert.equal(r.size, 0, 'a minute without refusals: forgotten');
    } finally {
      r.close();
    }
  });

  test('a flood of distinct sources keeps at most maxClients entries and is reported as one count', async () => {
    let now = 0;
    const { log, lines } = capture();
    const r = new RefusalLog(log, { now: () => now, maxClients: 1000 });
    try {
      let written = 0;
      for (let i = 0; i < 100_000; i++) if (r.admit(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`) !== null) written++;
      assert.equal(r.size, 1000);
      assert.equal(written, 1000, 'one line for each tracked client, none for the rest');
      now = 60_000;
      r.sweep();
      await settle();
      assert.equal(lines.length, 1);
      assert.equal(lines[0]?.['message'], 'refusals of more clients than are tracked were not logged');
      assert.equal(lines[0]?.['suppressed'], 99_000);
      assert.equal(r.size, 0, 'the quiet ones are forgotten');
    } finally {
      r.close();
    }
  });
});

test('a VM refused 300 times, and an unknown address refused 300 times, leave one line each in the logfile', async () => {
  const dir = tempDir();
  const logfile = path.join(dir, 'mdserver.log');
  const port = await freePort();
  const server = spawnServer(writeConfig(dir, { mdserver: { port, logfile } }));
  try {
    const read = (): string => (fs.existsSync(logfile) ? fs.readFileSync(logfile, 'utf8') : '');
    await waitFor('mdserver to listen', () => /listening/.test(read()) || server.exitCode !== null, 20000);
    assert.equal(server.exitCode, null, server.output());
    const vm = await upload(port, VM1);
    const stranger = '127.1.200.200';
    for (let i = 0; i < 300; i++) {
      const put = { method: 'PUT', from: vm, headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60', 'X-Forwarded-For': '10.9.9.9' } };
      assert.equal((await request(port, '/latest/api/token', put)).status, 403);
      assert.equal((await request(port, '/latest/meta-data/', { from: stranger })).status, 400);
    }
    await waitFor('the refusals in the logfile', () => /Unknown client: 127\.1\.200\.200/.test(read()));
    // winston writes the file asynchronously: give a line per request time to arrive, if there were one.
    await new Promise((r) => setTimeout(r, 500));
    const log = read();
    assert.equal(log.match(/X-Forwarded-For/g)?.length, 1, log.slice(0, 2000));
    assert.equal(log.match(/Unknown client: 127\.1\.200\.200/g)?.length, 1, log.slice(0, 2000));
    assert.match(log, new RegExp(`\\[WARN\\]: Forbidden: .*X-Forwarded-For.* client="${vm.replace(/\./g, '\\.')}"`));
  } finally {
    await stop(server);
  }
});
