// `Accept: application/json` on the EC2 paths: the subtree as JSON, as Firecracker's MMDS answers.
// The client at risk is every existing one: cloud-init, curl, the AWS SDKs and axios-based tools
// send no Accept header, `*/*` or a list that ties JSON with text, and must keep the IMDS text.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { wantsJson } from '../src/http/accept.js';
import { request, startTestServer, upload, VM1, type TestServer } from './helpers.js';

const JSON_ACCEPT = { Accept: 'application/json' };

describe('JSON answers on the EC2 paths', () => {
  let t: TestServer;
  let ip: string;
  before(async () => {
    t = await startTestServer();
    ip = await upload(t.port, { ...VM1, metadata: { role: 'web' } });
  });
  after(() => t.close());

  const json = async (p: string, headers: Record<string, string> = JSON_ACCEPT, from = ip): Promise<{ status: number; type: string; body: unknown }> => {
    const r = await request(t.port, p, { from, headers });
    assert.match(String(r.headers['content-type']), /^application\/json/, `${p}: ${r.body}`);
    return { status: r.status, type: String(r.headers['content-type']), body: JSON.parse(r.body) as unknown };
  };

  test('a directory is an object of its whole subtree, every value a string', async () => {
    const r = await json('/latest/meta-data/');
    assert.equal(r.status, 200);
    const md = r.body as Record<string, unknown>;
    const text = await request(t.port, '/latest/meta-data/', { from: ip });
    // The same names as the text listing, without the trailing slashes of directories.
    assert.deepEqual(Object.keys(md).sort(), text.body.split('\n').map((l) => l.replace(/\/$/, '')).sort());
    assert.equal(md['instance-id'], (await request(t.port, '/latest/meta-data/instance-id', { from: ip })).body);
    assert.equal(md['local-ipv4'], ip);
    assert.deepEqual(md['public-keys'], { 0: { 'openssh-key': 'ssh-ed25519 AAAAdefaultkey user@host' }, 1: { 'openssh-key': 'ssh-rsa AAAAsecondkey other@host' } });
    assert.deepEqual(md['tags'], { instance: { role: 'web' } });
    const macs = (md['network'] as { interfaces: { macs: Record<string, Record<string, string>> } }).interfaces.macs;
    assert.equal(macs[VM1.mac]?.['local-ipv4s'], ip);
  });

  test('the version directory holds the rendered user-data and the identity document, as strings', async () => {
    const r = await json('/latest');
    const v = r.body as Record<string, unknown>;
    assert.deepEqual(Object.keys(v).sort(), ['dynamic', 'meta-data', 'user-data']);
    assert.equal(v['user-data'], (await request(t.port, '/latest/user-data', { from: ip })).body);
    const doc = (v['dynamic'] as Record<string, Record<string, string>>)['instance-identity']?.['document'] as string;
    assert.equal((JSON.parse(doc) as { privateIp: string }).privateIp, ip);
  });

  test('a value is a JSON string; the version list an array', async () => {
    const r = await json('//2021-03-23/meta-data/local-hostname');
    assert.deepEqual(r, { status: 200, type: 'application/json; charset=utf-8', body: 'test1' });
    assert.deepEqual((await json('/', JSON_ACCEPT, '127.0.0.1')).body, ['2009-04-04', '2016-09-02', '2018-09-24', '2021-03-23', 'latest']);
  });

  test('errors keep their status and come as JSON', async () => {
    assert.deepEqual(await json('/latest/meta-data/nope'), {
      status: 404, type: 'application/json; charset=utf-8', body: { error: 'NOT_FOUND', message: 'Resource not found: /latest/meta-data/nope' },
    });
    const unknown = await json('/latest/meta-data/', JSON_ACCEPT, '127.1.250.250');
    assert.equal(unknown.status, 400);
    assert.deepEqual(unknown.body, { error: 'UNKNOWN_CLIENT', message: 'Unknown client: 127.1.250.250' });
    const proxied = await json('/latest/meta-data/', { ...JSON_ACCEPT, 'X-Forwarded-For': '1.2.3.4' });
    assert.equal(proxied.status, 403);
  });

  test('clients that do not prefer JSON get the IMDS text, as before', async () => {
    // None (Node, Go, the AWS SDKs), curl and requests (cloud-init), axios, a browser, text first.
    const accepts = [undefined, '*/*', 'application/json, text/plain, */*', 'text/html,application/xhtml+xml,*/*;q=0.8',
      'text/plain, application/json', 'application/json;q=0.5, */*'];
    for (const accept of accepts) {
      const r = await request(t.port, '/latest/meta-data/', { from: ip, headers: accept === undefined ? {} : { Accept: accept } });
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^text\/plain/, String(accept));
      assert.match(r.body, /^ami-id\n/);
      const missing = await request(t.port, '/latest/meta-data/nope', { from: ip, headers: accept === undefined ? {} : { Accept: accept } });
      assert.equal(missing.body, 'Resource not found: /latest/meta-data/nope');
    }
  });
});

test('wantsJson: JSON only when preferred over text', () => {
  assert.equal(wantsJson('application/json'), true);
  assert.equal(wantsJson('application/json, */*;q=0.8'), true);
  assert.equal(wantsJson('text/plain;q=0.1, application/json'), true);
  assert.equal(wantsJson('APPLICATION/JSON'), true);
  assert.equal(wantsJson(undefined), false);
  assert.equal(wantsJson('application/json;q=0'), false);
  assert.equal(wantsJson('application/json;q=abc'), false);
  assert.equal(wantsJson('application/json, text/plain'), false);
  assert.equal(wantsJson('application/jsonx'), false);
  assert.equal(wantsJson(`${'x/y,'.repeat(5000)}application/json`), false);
});
