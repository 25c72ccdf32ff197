// How a request path is read and which route answers it: doubled slashes, escapes, exact paths
// before first segments, routes switched off by the configuration, HEAD answered from GET.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { collapseSlashes, splitPath } from '../src/http/path.js';
import { allowHeader, allows, RouteTable, type Method, type RouteSpec } from '../src/http/router.js';

describe('reading a request path', () => {
  const cases: [raw: string, collapsed: string, segments: string[]][] = [
    ['/', '/', []],
    ['//', '/', []],
    ['/latest', '/latest', ['latest']],
    ['/latest/', '/latest/', ['latest']],
    ['//latest/meta-data/instance-id', '/latest/meta-data/instance-id', ['latest', 'meta-data', 'instance-id']],
    ['/latest//meta-data///hostname', '/latest/meta-data/hostname', ['latest', 'meta-data', 'hostname']],
    ['//latest//meta-data//', '/latest/meta-data/', ['latest', 'meta-data']],
    ['/%6catest/meta-data', '/%6catest/meta-data', ['latest', 'meta-data']],
    ['/latest/meta-data%2Fhostname', '/latest/meta-data%2Fhostname', ['latest', 'meta-data/hostname']],
    ['/latest/tags/instance/a%20b', '/latest/tags/instance/a%20b', ['latest', 'tags', 'instance', 'a b']],
  ];
  for (const [raw, collapsed, segments] of cases) {
    test(`${raw} reads as ${collapsed}, segments ${JSON.stringify(segments)}`, () => {
      assert.equal(collapseSlashes(raw), collapsed);
      assert.deepEqual(splitPath(collapseSlashes(raw)), segments);
    });
  }

  test('a malformed escape is a 400 naming the problem', () => {
    for (const raw of ['/latest/meta-data/%zz', '/%', '/latest/%E0%A4%A']) {
      assert.throws(() => splitPath(raw), (e: Error & { code?: string }) => e.code === 'BAD_REQUEST' && /percent-encoding/.test(e.message), raw);
    }
  });
});

describe('matching routes', () => {
  interface Cfg { versions: string[]; extra: boolean }
  type R = RouteSpec<Cfg> & { name: string };
  const routes: R[] = [
    { name: 'token', paths: ['/latest/api/token'], methods: ['PUT'] },
    { name: 'extra-list', paths: ['/extra', '/extra/'], enabled: (c) => c.extra, methods: ['GET'] },
    { name: 'extra', prefixes: ['extra'], enabled: (c) => c.extra, methods: ['GET'] },
    { name: 'fixed', prefixes: ['fixed'], methods: ['GET'] },
    { name: 'root', paths: ['/'], methods: ['GET'] },
    { name: 'version', prefixes: (c) => c.versions, methods: ['GET'] },
  ];
  const table = new RouteTable<Cfg, R>(routes);
  const on: Cfg = { versions: ['2009-04-04', 'latest', 'fixed'], extra: true };
  const off: Cfg = { versions: ['latest', 'extra'], extra: false };
  const match = (path: string, c: Cfg): string | undefined =>
    (table.byPath(path, c) ?? table.byPrefix(splitPath(path)[0], c))?.name;

  const cases: [path: string, config: Cfg, route: string | undefined][] = [
    ['/latest/api/token', on, 'token'],
    ['/latest/api/token/', on, 'version'],
    ['/latest/meta-data/', on, 'version'],
    ['/2009-04-04', on, 'version'],
    ['/2016-09-02/meta-data', on, undefined],
    ['/', on, 'root'],
    ['/extra', on, 'extra-list'],
    ['/extra/', on, 'extra-list'],
    ['/extra/a/b', on, 'extra'],
    ['/fixed/a', on, 'fixed'],
    ['/nothing', on, undefined],
    ['/extra', off, 'version'],
    ['/extra/a', off, 'version'],
    ['/2009-04-04/meta-data', off, undefined],
  ];
  for (const [path, c, route] of cases) {
    test(`${path} with ${c === on ? 'extra on' : 'extra off'} goes to ${route ?? 'no route'}`, () => {
      assert.equal(match(path, c), route);
    });
  }

  test('a new configuration object (a reload) is read again; the same one is not', () => {
    const c: Cfg = { versions: ['latest'], extra: false };
    assert.equal(match('/latest', c), 'version');
    c.versions = ['2009-04-04'];
    assert.equal(match('/2009-04-04', c), undefined, 'the maps are built once per configuration object');
    assert.equal(match('/2009-04-04', { ...c }), 'version');
  });
});

describe('methods', () => {
  const cases: [methods: Method[], method: string, allowed: boolean][] = [
    [['GET'], 'GET', true],
    [['GET'], 'HEAD', true],
    [['GET'], 'POST', false],
    [['GET'], 'OPTIONS', false],
    [['PUT'], 'PUT', true],
    [['PUT'], 'HEAD', false],
    [['PUT'], 'GET', false],
    [['POST'], 'POST', true],
    [['POST'], 'get', false],
  ];
  for (const [methods, method, allowed] of cases) {
    test(`${methods.join(',')} ${allowed ? 'answers' : 'refuses'} ${method}`, () => assert.equal(allows(methods, method), allowed));
  }

  test('Allow names HEAD wherever GET is answered', () => {
    assert.equal(allowHeader(['GET']), 'GET, HEAD');
    assert.equal(allowHeader(['PUT']), 'PUT');
    assert.equal(allowHeader(['POST']), 'POST');
    assert.equal(allowHeader(['GET', 'POST']), 'GET, HEAD, POST');
  });
});
