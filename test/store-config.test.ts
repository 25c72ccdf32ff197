// The [store] settings as an operator writes them: a password only ever in its own file, never
// shown; bad values refused naming file, key and value.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../src/config/index.js';
import { tempDir } from './helpers.js';
import { MDSERVER } from './process.js';

function write(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('[store]', () => {
  test('unset: the SQLite file as before, this machine as the host name, every instance of the cluster in dnsmasq', () => {
    const cfg = loadConfig(write(tempDir(), 'm.conf', '')).config;
    assert.deepEqual({ ...cfg.store }, { url: null, password: null, hostName: os.hostname(), dhcpScope: 'cluster' });
  });

  test('a password file is read, and neither it nor the password is shown by --check-config', () => {
    const dir = tempDir();
    const pw = write(dir, 'pw', 'pg-secret-4711\n');
    const file = write(dir, 'm.conf', `[store]\nurl = postgresql://mdserver@/mdserver?host=/run/postgresql\npassword_file = ${pw}\nhost_name = kvm-3\n`);
    const cfg = loadConfig(file).config;
    assert.deepEqual([cfg.store.password, cfg.store.hostName], ['pg-secret-4711', 'kvm-3']);
    const r = spawnSync(process.execPath, [MDSERVER, '--check-config', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^store\.password_file=<hidden>$/m);
    assert.match(r.stdout, /^store\.url=postgresql:\/\/mdserver@\/mdserver\?host=\/run\/postgresql$/m);
    assert.ok(!r.stdout.includes('pg-secret-4711'));
  });

  test('a password in the URL, a URL that is not PostgreSQL\'s, an unknown scope and a missing password file are refused by name', () => {
    const dir = tempDir();
    const file = write(dir, 'm.conf', '[store]\nurl = postgresql://mdserver:hunter2@db/mdserver\ndhcp_scope = everywhere\npassword_file = /nonexistent/pw\n');
    const r = spawnSync(process.execPath, [MDSERVER, '--check-config', file], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /\[store\] url = .*holds a password: put it in \[store\] password_file instead/);
    assert.match(r.stderr, /\[store\] dhcp_scope = "everywhere"/);
    assert.match(r.stderr, /\[store\] password_file = "\/nonexistent\/pw": cannot read/);
    const other = write(dir, 'o.conf', '[store]\nurl = mysql://db/mdserver\n');
    assert.match(spawnSync(process.execPath, [MDSERVER, '--check-config', other], { encoding: 'utf8' }).stderr, /\[store\] url = "mysql:\/\/db\/mdserver": expected a postgresql:\/\/ URL/);
  });
});
