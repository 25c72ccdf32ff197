// Any local user can reach the metadata port on loopback: without a lock, any of them can rewrite
// any VM's record (its MAC, so its address goes elsewhere; its metadata, so its template). With
// `[mdserver] upload_token_file`, an HTTP upload must carry the file's token; the admin socket
// (root and the mdserver group) needs none; a configuration without one keeps md_server's open
// uploads, and `mdserver status` says so.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { domainXml, request, startTestServer, tempDir, VM1, writeConfig, type TestServer } from './helpers.js';
import { cli, MDSERVER, run } from './process.js';

const TOKEN = 'f3a1c9e07b5d42a8966e0c1d2b3a4f5e6d7c8b9a0e1f2a3b4c5d6e7f8091a2b3';

function post(srv: TestServer, xml: string, headers: Record<string, string> = {}) {
  return request(srv.port, '/instance-upload', { method: 'POST', body: xml, headers });
}

describe('with upload_token_file set', () => {
  let srv: TestServer;
  let tokenFile: string;
  before(async () => {
    const dir = tempDir();
    tokenFile = path.join(dir, 'upload-token');
    fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o640 });
    srv = await startTestServer({ mdserver: { upload_token_file: tokenFile } }, dir);
    assert.equal((await post(srv, domainXml(VM1), { Authorization: `Bearer ${TOKEN}` })).status, 201);
  });
  after(() => srv.close());

  test('an upload without the token, or with another, is a 401 and the VM\'s record is untouched', async () => {
    const hijack = domainXml({ ...VM1, mac: '52:54:00:66:66:66', metadata: { userdata_prefix: 'evil' } });
    for (const headers of [{}, { Authorization: 'Bearer wrong' }, { Authorization: `Bearer ${TOKEN}x` }, { Authorization: `Basic ${TOKEN}` },
      { Authorization: TOKEN }, { Authorization: `Bearer ${TOKEN.slice(0, -1)}` }] as Record<string, string>[]) {
      const r = await post(srv, hijack, headers);
      assert.equal(r.status, 401, JSON.stringify(headers));
      assert.match(r.body, /Authorization: Bearer/);
      assert.equal(r.headers['www-authenticate'], 'Bearer realm="mdserver"');
    }
    const rec = srv.running.store.byName(VM1.name);
    assert.equal(rec?.mac, VM1.mac);
    assert.deepEqual(rec?.metadata, {});
  });

  test('with the token the upload goes through, sent as curl sends a header from a file', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'domain.xml'), domainXml({ ...VM1, metadata: { role: 'web' } }));
    // As doc/setup.md shows it: the token goes to curl through a pipe, not on its command line.
    const line = `curl -sS -H @<(printf 'Authorization: Bearer %s\\n' "$(cat ${tokenFile})") --data-binary @${dir}/domain.xml http://127.0.0.1:${srv.port}/instance-upload`;
    const r = await run('bash', ['-c', line]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^updated test1 mac=52:54:00:3a:cf:41/);
    assert.deepEqual(srv.running.store.byName(VM1.name)?.metadata, { role: 'web' });
  });

  test('the admin socket takes uploads without a token: its permissions decide who may', async () => {
    const r = await run('curl', ['-sS', '--unix-socket', srv.running.adminSocket as string, '--data-binary', domainXml(VM1), 'http://localhost/instance-upload']);
    assert.match(r.stdout, /^updated test1 /);
  });

  test('a reload reads the file again: the old token stops working, the new one works', async () => {
    const next = TOKEN.split('').reverse().join('');
    fs.writeFileSync(tokenFile, next);
    const r = await cli(['reload', '--socket', srv.running.adminSocket as string]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((await post(srv, domainXml(VM1), { Authorization: `Bearer ${TOKEN}` })).status, 401);
    assert.equal((await post(srv, domainXml(VM1), { Authorization: `Bearer ${next}` })).status, 200);
  });

  test('mdserver status has no warning about uploads', async () => {
    const r = await cli(['status', '--socket', srv.running.adminSocket as string]);
    assert.doesNotMatch(r.stdout, /uploads over HTTP/);
  });
});

describe('without upload_token_file (an md_server configuration)', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(() => srv.close());

  test('uploads stay open, as md_server\'s were, and a stray Authorization header does no harm', async () => {
    assert.equal((await post(srv, domainXml(VM1))).status, 201);
    assert.equal((await post(srv, domainXml(VM1), { Authorization: 'Bearer anything' })).status, 200);
  });

  test('mdserver status warns that every local user can upload, and stays healthy for it', async () => {
    const r = await cli(['status', '--json', '--socket', srv.running.adminSocket as string]);
    const s = JSON.parse(r.stdout) as { warnings: string[]; problems: string[] };
    assert.equal(s.warnings.filter((w) => /uploads over HTTP are open to every local user.*set \[mdserver\] upload_token_file/.test(w)).length, 1);
    assert.ok(!s.problems.some((p) => /upload/.test(p)));
    const text = await cli(['status', '--socket', srv.running.adminSocket as string]);
    assert.match(text.stdout, /^warning: +uploads over HTTP are open to every local user/m);
  });
});

describe('a token file that cannot be used', () => {
  const cases: [string, (file: string) => void, RegExp][] = [
    ['missing', () => undefined, /cannot read .*upload-token: ENOENT/],
    ['empty', (f) => fs.writeFileSync(f, '\n'), /upload-token is empty/],
    ['a directory', (f) => fs.mkdirSync(f), /cannot read .*upload-token: not a regular file/],
    ['two lines', (f) => fs.writeFileSync(f, 'abcdefghijklmnopq\nrstuvwxyz0123456\n'), /must hold one token on one line/],
  ];
  for (const [name, make, message] of cases) {
    test(`${name}: --check-config names the file, key and value, and the server does not start`, async () => {
      const dir = tempDir();
      const file = path.join(dir, 'upload-token');
      make(file);
      const conf = writeConfig(dir, { mdserver: { upload_token_file: file } });
      const r = await run(process.execPath, [MDSERVER, '--check-config', conf]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, new RegExp(`${conf.replace(/[.]/g, '\\.')}: \\[mdserver\\] upload_token_file = "${file.replace(/[.]/g, '\\.')}": `));
      assert.match(r.stderr, message);
      await assert.rejects(startTestServer({ mdserver: { upload_token_file: file } }, dir), /upload_token_file/);
    });
  }

  test('a reload that finds the file gone is refused, and the running token keeps working', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'upload-token');
    fs.writeFileSync(file, TOKEN, { mode: 0o600 });
    const srv = await startTestServer({ mdserver: { upload_token_file: file } }, dir);
    try {
      fs.rmSync(file);
      const r = await cli(['reload', '--socket', srv.running.adminSocket as string]);
      assert.notEqual(r.status, 0);
      assert.match(r.stdout + r.stderr, /upload_token_file.*cannot read/);
      assert.equal((await post(srv, domainXml(VM1), { Authorization: `Bearer ${TOKEN}` })).status, 201);
      assert.equal((await post(srv, domainXml(VM1))).status, 401);
    } finally {
      await srv.close();
    }
  });

  test('a token file every user may read is accepted with a warning', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'upload-token');
    fs.writeFileSync(file, TOKEN);
    fs.chmodSync(file, 0o644);
    const r = await run(process.execPath, [MDSERVER, '--check-config', writeConfig(dir, { mdserver: { upload_token_file: file } })]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /upload_token_file names .*upload-token, which every user can read/);
  });
});
