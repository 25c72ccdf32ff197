// IMDSv2 session tokens over HTTP: how they are issued, what a bad request gets, and what a
// token is worth from another address, after its expiry, or when forged, in both modes.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request, startTestServer, startWithVms, VM1, VM2, type Reply, type TestServer } from './helpers.js';

const TTL = 'X-aws-ec2-metadata-token-ttl-seconds';
const TOKEN = 'X-aws-ec2-metadata-token';

function putToken(srv: TestServer, from: string, headers: Record<string, string> = { [TTL]: '21600' }): Promise<Reply> {
  return request(srv.port, '/latest/api/token', { method: 'PUT', from, headers });
}

async function token(srv: TestServer, from: string, ttl = '21600'): Promise<string> {
  const r = await putToken(srv, from, { [TTL]: ttl });
  assert.equal(r.status, 200, r.body);
  return r.body;
}

/** A GET from `from`, with `tok` as the session token unless it is undefined. */
function getWithToken(srv: TestServer, path: string, from: string, tok?: string): Promise<Reply> {
  return request(srv.port, path, { from, headers: tok === undefined ? {} : { [TOKEN]: tok } });
}

/** Changes one character in the middle, keeping the token well-formed base64url. */
function tamper(t: string): string {
  const i = Math.floor(t.length / 2);
  return t.slice(0, i) + (t[i] === 'A' ? 'B' : 'A') + t.slice(i + 1);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('issuing tokens', () => {
  let srv: TestServer;
  let ip: string;
  before(async () => {
    [srv, ip] = await startWithVms({}, [VM1]);
  });
  after(() => srv.close());

  test('PUT with a TTL from 1 to 21600 returns a token and echoes the TTL', async () => {
    for (const ttl of ['1', '300', '21600']) {
      const r = await putToken(srv, ip, { [TTL]: ttl });
      assert.equal(r.status, 200);
      assert.match(r.body, /^[A-Za-z0-9_-]{20,}$/);
      assert.equal(r.headers['x-aws-ec2-metadata-token-ttl-seconds'], ttl);
      assert.match(String(r.headers['content-type']), /^text\/plain/);
    }
  });

  test('the token path answers with a doubled leading slash too, as clients joining URLs send it', async () => {
    const r = await request(srv.port, '//latest/api/token', { method: 'PUT', from: ip, headers: { [TTL]: '60' } });
    assert.equal(r.status, 200);
  });

  test('two requests get two different tokens', async () => {
    assert.notEqual(await token(srv, ip, '100'), await token(srv, ip, '200'));
  });

  test('a missing, empty, out-of-range or non-integer TTL is a 400 that names the header', async () => {
    const bad: Record<string, string>[] = [
      {},
      { [TTL]: '' },
      { [TTL]: '0' },
      { [TTL]: '21601' },
      { [TTL]: '-1' },
      { [TTL]: '1.5' },
      { [TTL]: '1e3' },
      { [TTL]: 'abc' },
      { [TTL]: '99999999999999999999' },
      { [TTL]: '0x10' },
    ];
    for (const headers of bad) {
      const r = await putToken(srv, ip, headers);
      assert.equal(r.status, 400, JSON.stringify(headers));
      assert.match(r.body, /x-aws-ec2-metadata-token-ttl-seconds/i);
      assert.equal(r.headers['x-aws-ec2-metadata-token-ttl-seconds'], undefined);
    }
  });

  test('a PUT carrying X-Forwarded-For came through a proxy and gets no token', async () => {
    const r = await putToken(srv, ip, { [TTL]: '60', 'X-Forwarded-For': '10.0.0.9' });
    assert.equal(r.status, 403);
    assert.match(r.body, /X-Forwarded-For/);
    // Even an empty one: its presence is what marks a proxied request.
    assert.equal((await putToken(srv, ip, { [TTL]: '60', 'X-Forwarded-For': '' })).status, 403);
  });

  test('other methods on the token path are 405 with Allow: PUT', async () => {
    for (const method of ['GET', 'HEAD', 'POST', 'DELETE', 'PATCH']) {
      const r = await request(srv.port, '/latest/api/token', { method, from: ip, headers: { [TTL]: '60' } });
      assert.equal(r.status, 405, method);
      assert.equal(r.headers['allow'], 'PUT', method);
    }
  });
});

describe('imds_tokens = optional (the default)', () => {
  let srv: TestServer;
  let ip1: string;
  let ip2: string;
  before(async () => {
    [srv, ip1, ip2] = await startWithVms({}, [VM1, VM2]);
  });
  after(() => srv.close());

  const get = (path: string, from: string, tok?: string) => getWithToken(srv, path, from, tok);

  test('IMDSv1 callers without a token are served', async () => {
    const r = await get('/latest/meta-data/instance-id', ip1);
    assert.equal(r.status, 200);
    assert.equal(r.body, `i-${ip1}`);
  });

  test('IMDSv2 callers with their own token are served', async () => {
    const t = await token(srv, ip1);
    assert.equal((await get('/latest/meta-data/instance-id', ip1, t)).body, `i-${ip1}`);
    assert.equal((await get('/2021-03-23/meta-data/', ip1, t)).status, 200);
    assert.equal((await get('/latest/user-data', ip1, t)).status, 200);
  });

  test('a token replayed from another instance is a 401, even though no token would be served', async () => {
    const t = await token(srv, ip1);
    const r = await get('/latest/meta-data/instance-id', ip2, t);
    assert.equal(r.status, 401);
    assert.match(r.body, /token/);
    assert.equal((await get('/latest/meta-data/instance-id', ip2)).status, 200);
  });

  test('forged and garbled tokens are 401', async () => {
    const t = await token(srv, ip1);
    for (const bad of [tamper(t), t.slice(0, -1), `${t}A`, 'A'.repeat(t.length), 'not a token', '']) {
      assert.equal((await get('/latest/meta-data/instance-id', ip1, bad)).status, 401, JSON.stringify(bad));
    }
  });

  test('a token stops working when its TTL has passed', async () => {
    const t = await token(srv, ip1, '1');
    assert.equal((await get('/latest/meta-data/instance-id', ip1, t)).status, 200);
    await sleep(1100);
    const r = await get('/latest/meta-data/instance-id', ip1, t);
    assert.equal(r.status, 401);
    assert.match(r.body, /expired/);
  });

  test('a token from another server (another key) is a 401', async () => {
    const other = await startTestServer();
    try {
      const foreign = await token(other, ip1);
      assert.equal((await get('/latest/meta-data/instance-id', ip1, foreign)).status, 401);
    } finally {
      await other.close();
    }
  });
});

describe('imds_tokens = required', () => {
  let srv: TestServer;
  let ip1: string;
  let ip2: string;
  before(async () => {
    [srv, ip1, ip2] = await startWithVms({ mdserver: { imds_tokens: 'required' } }, [VM1, VM2]);
  });
  after(() => srv.close());

  const get = (path: string, from: string, tok?: string) => getWithToken(srv, path, from, tok);

  test('every EC2 path without a token is a 401 that says how to get one', async () => {
    for (const path of ['/', '/latest/', '/latest/meta-data/', '/latest/meta-data/instance-id', '/latest/user-data', '/2009-04-04/meta-data/instance-id', '/latest/dynamic/instance-identity/document']) {
      const r = await get(path, ip1);
      assert.equal(r.status, 401, path);
      assert.match(r.body, /PUT \/latest\/api\/token/, path);
    }
  });

  test('with its own token the instance reads everything', async () => {
    const t = await token(srv, ip1);
    assert.equal((await get('/', ip1, t)).status, 200);
    assert.equal((await get('/latest/meta-data/local-ipv4', ip1, t)).body, ip1);
    assert.equal((await get('/latest/dynamic/instance-identity/document', ip1, t)).status, 200);
    assert.match((await get('/latest/user-data', ip1, t)).body, /^#cloud-config/);
  });

  test('expired, foreign and forged tokens are 401', async () => {
    const own = await token(srv, ip1);
    assert.equal((await get('/latest/meta-data/instance-id', ip2, own)).status, 401);
    assert.equal((await get('/latest/meta-data/instance-id', ip1, tamper(own))).status, 401);
    const short = await token(srv, ip1, '1');
    await sleep(1100);
    assert.equal((await get('/latest/meta-data/instance-id', ip1, short)).status, 401);
  });

  test('the token rules still apply to the PUT itself', async () => {
    assert.equal((await putToken(srv, ip1, {})).status, 400);
    assert.equal((await putToken(srv, ip1, { [TTL]: '60', 'X-Forwarded-For': '1.2.3.4' })).status, 403);
  });

  test('paths outside the EC2 tree do not ask for a token', async () => {
    assert.equal((await get('/service/name', ip1)).status, 200);
  });
});
