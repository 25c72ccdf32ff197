// Every route of the public app as VMs, unknown callers and the host see it: who may call it,
// which methods it answers (HEAD wherever GET, with the same headers and no body), and the 405's
// Allow header, through a real server.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request, startWithVms, VM1, type TestServer } from './helpers.js';

const HOST = '127.0.0.1';
const UNKNOWN = '127.1.250.250';

describe('the route table over HTTP', () => {
  let srv: TestServer;
  let vm: string;

  before(async () => {
    [srv, vm] = await startWithVms({ nocloud: { enabled: 'no' } }, [VM1]);
  });
  after(() => srv.close());

  const who = (from: 'vm' | 'host' | 'unknown'): string => (from === 'vm' ? vm : from === 'host' ? HOST : UNKNOWN);

  const access: [path: string, from: 'vm' | 'host' | 'unknown', status: number][] = [
    ['/latest/meta-data/instance-id', 'vm', 200],
    ['/latest/meta-data/instance-id', 'unknown', 400],
    ['/', 'unknown', 200],
    ['/openstack', 'unknown', 200],
    ['/openstack/', 'unknown', 200],
    ['//openstack//', 'unknown', 200],
    ['/openstack/latest/meta_data.json', 'vm', 200],
    ['/openstack/latest/meta_data.json', 'unknown', 400],
    ['/service/name', 'unknown', 200],
    ['/service/configuration', 'vm', 401],
    ['/service/configuration/', 'vm', 401],
    ['/service//configuration', 'vm', 401],
    ['/service/%63onfiguration', 'vm', 404],
    ['/service/configuration', 'host', 200],
    ['/service/configuration/', 'host', 200],
    ['/health', 'vm', 401],
    ['//health', 'vm', 401],
    ['/health', 'host', 200],
    ['/nocloud/meta-data', 'vm', 404],
    ['/no-such-path', 'vm', 404],
  ];
  for (const [path, from, status] of access) {
    test(`GET ${path} from ${from === 'vm' ? 'a VM' : from === 'host' ? 'the host' : 'an unknown address'} is ${status}`, async () => {
      assert.equal((await request(srv.port, path, { from: who(from) })).status, status);
    });
  }

  const reads: [path: string, from: 'vm' | 'host' | 'unknown'][] = [
    ['/', 'vm'], ['/latest/meta-data/instance-id', 'vm'], ['/latest/meta-data/', 'vm'], ['/latest/user-data', 'vm'],
    ['/openstack', 'unknown'], ['/openstack/latest/meta_data.json', 'vm'], ['/service/name', 'unknown'],
    ['/service/configuration', 'host'], ['/health', 'host'],
  ];
  for (const [path, from] of reads) {
    test(`HEAD ${path} answers as GET does, without a body`, async () => {
      const get = await request(srv.port, path, { from: who(from) });
      const head = await request(srv.port, path, { from: who(from), method: 'HEAD' });
      assert.equal(head.status, get.status);
      assert.equal(head.headers['content-type'], get.headers['content-type']);
      assert.equal(head.body, '');
    });
  }

  const refused: [path: string, method: string, from: 'vm' | 'host', allow: string][] = [
    ['/latest/meta-data/instance-id', 'POST', 'vm', 'GET, HEAD'],
    ['/', 'PUT', 'vm', 'GET, HEAD'],
    ['/openstack', 'DELETE', 'vm', 'GET, HEAD'],
    ['/openstack/latest/meta_data.json', 'PUT', 'vm', 'GET, HEAD'],
    ['/service/name', 'POST', 'vm', 'GET, HEAD'],
    ['/service/configuration', 'DELETE', 'host', 'GET, HEAD'],
    ['/health', 'POST', 'host', 'GET, HEAD'],
    ['/latest/api/token', 'GET', 'vm', 'PUT'],
    ['/instance-upload', 'GET', 'host', 'POST'],
  ];
  for (const [path, method, from, allow] of refused) {
    test(`${method} ${path} is a 405 with Allow: ${allow}`, async () => {
      const r = await request(srv.port, path, { from: who(from), method });
      assert.equal(r.status, 405);
      assert.equal(r.headers['allow'], allow);
      assert.match(r.body, /^Method not allowed: /);
    });
  }
});
