// Log rotation: mdserver as its own process reopens its logfile on SIGUSR1, and the shipped
// logrotate snippet (systemd/mdserver.logrotate) rotates it with real logrotate.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, tempDir, writeConfig } from './helpers.js';
import { waitFor } from './netns.js';
import { cli, ROOT, run, spawnServer, stop } from './process.js';

const read = (file: string): string => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');

/** Starts mdserver logging to `<dir>/log/mdserver.log` and waits until it has logged that it listens. */
async function startLogging(dir: string): Promise<{ server: ReturnType<typeof spawnServer>; logfile: string; config: string }> {
  const logfile = path.join(dir, 'log', 'mdserver.log');
  const config = writeConfig(dir, { mdserver: { port: await freePort(), logfile } });
  const server = spawnServer(config);
  await waitFor('mdserver to log that it listens', () => /listening/.test(read(logfile)) || server.exitCode !== null, 20000);
  assert.equal(server.exitCode, null, server.output());
  return { server, logfile, config };
}

test('a running mdserver whose logfile was renamed writes to a fresh file at its path after SIGUSR1', async () => {
  const dir = tempDir();
  let server: ReturnType<typeof spawnServer> | null = null;
  try {
    const started = await startLogging(dir);
    server = started.server;
    const { logfile, config } = started;
    fs.renameSync(logfile, `${logfile}.1`);
    // Until it is told, mdserver keeps writing to the file it has open, whatever its name now.
    const status = await cli(['status', '--config', config]);
    assert.notEqual(status.status, null, status.stderr);
    await waitFor('a line in the renamed file', () => /admin GET \/status/.test(read(`${logfile}.1`)));
    assert.equal(fs.existsSync(logfile), false);

    server.kill('SIGUSR1');
    await waitFor('the reopened logfile', () => /logfile reopened/.test(read(logfile)));
    const reload = await cli(['reload', '--config', config]);
    assert.equal(reload.status, 0, reload.stderr);
    await waitFor('the next line in the fresh file', () => /admin POST \/reload 200/.test(read(logfile)));
    assert.doesNotMatch(read(`${logfile}.1`), /admin POST \/reload/, 'nothing new goes to the renamed file');
    assert.match(read(`${logfile}.1`), /admin GET \/status/, 'the renamed file keeps what was written before');
    assert.equal(server.exitCode, null, 'SIGUSR1 does not stop mdserver');
    // Without a listener Node would open its inspector on SIGUSR1.
    assert.doesNotMatch(server.output(), /Debugger listening/);
    assert.equal(await stop(server), 0);
  } finally {
    if (server) await stop(server);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const hasLogrotate = spawnSync('sh', ['-c', 'command -v logrotate'], { stdio: 'ignore' }).status === 0;
if (!hasLogrotate && process.env['CI'] === 'true') throw new Error('logrotate is required under CI (Debian: logrotate)');

test('the shipped logrotate snippet rotates the logfile and mdserver carries on in a fresh one', { skip: hasLogrotate ? false : 'needs logrotate' }, async () => {
  const dir = tempDir();
  let server: ReturnType<typeof spawnServer> | null = null;
  try {
    const started = await startLogging(dir);
    server = started.server;
    const { logfile, config } = started;
    const snippet = fs.readFileSync(path.join(ROOT, 'systemd', 'mdserver.logrotate'), 'utf8');
    // Only what cannot run here is replaced: the path, the account (the test's own), and systemd
    // delivering the signal to the service's main process.
    const signal = 'systemctl kill --signal=USR1 --kill-whom=main mdserver.service';
    assert.ok(snippet.includes(signal), 'the snippet signals mdserver through systemd');
    assert.match(snippet, /^\s*su mdserver mdserver$/m);
    const user = spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim();
    const group = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
    const conf = path.join(dir, 'logrotate.conf');
    fs.writeFileSync(conf, snippet
      .replace(/^\/var\/log\/mdserver\//m, `${path.dirname(logfile)}/`)
      .replace(/^(\s*)su mdserver mdserver$/m, `$1su ${user} ${group}`)
      .replace(signal, `kill -USR1 ${server.pid}`));
    const r = await run('logrotate', ['--verbose', '--force', '--state', path.join(dir, 'logrotate.state'), conf]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(read(`${logfile}.1`), /listening/, `the old lines are in mdserver.log.1, compressed only at the next rotation: ${r.stderr}`);
    await waitFor('the reopened logfile', () => /logfile reopened/.test(read(logfile)));
    const status = await cli(['status', '--config', config]);
    assert.notEqual(status.status, null, status.stderr);
    await waitFor('the next line in the fresh file', () => /admin GET \/status/.test(read(logfile)));
    assert.doesNotMatch(read(`${logfile}.1`), /admin GET \/status/);
  } finally {
    if (server) await stop(server);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
