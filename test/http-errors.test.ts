// What a client is told for each kind of error: the status, the headers, and how loudly the
// refusal is logged, decided in one place for the public and the admin apps.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MdsError, type ErrorCode } from '../src/errors.js';
import { errorReply, HttpError, levelOf, STATUS } from '../src/http/errorReply.js';

describe('errorReply', () => {
  const cases: { name: string; thrown: unknown; status: number; code: ErrorCode; level: string; unexpected?: boolean }[] = [
    { name: 'an unknown caller', thrown: new MdsError('UNKNOWN_CLIENT', 'x'), status: 400, code: 'UNKNOWN_CLIENT', level: 'warn' },
    { name: 'a non-host caller on a host-only path', thrown: new MdsError('UNAUTHORISED_CLIENT', 'x'), status: 401, code: 'UNAUTHORISED_CLIENT', level: 'warn' },
    { name: 'a missing IMDSv2 token', thrown: new MdsError('TOKEN_REQUIRED', 'x'), status: 401, code: 'TOKEN_REQUIRED', level: 'warn' },
    { name: 'a MAC that does not match', thrown: new MdsError('FORBIDDEN', 'x'), status: 403, code: 'FORBIDDEN', level: 'warn' },
    { name: 'a missing key, which clients probe for', thrown: new MdsError('NOT_FOUND', 'x'), status: 404, code: 'NOT_FOUND', level: 'debug' },
    { name: 'a name already taken', thrown: new MdsError('CONFLICT', 'x'), status: 409, code: 'CONFLICT', level: 'warn' },
    { name: 'a full address pool', thrown: new MdsError('POOL_EXHAUSTED', 'x'), status: 409, code: 'POOL_EXHAUSTED', level: 'warn' },
    { name: 'bad domain XML', thrown: new MdsError('BAD_DOMAIN_XML', 'x'), status: 400, code: 'BAD_DOMAIN_XML', level: 'warn' },
    { name: 'a flood, already logged by the limiter', thrown: new MdsError('TOO_MANY_REQUESTS', 'x'), status: 429, code: 'TOO_MANY_REQUESTS', level: 'debug' },
    { name: 'a template that fails', thrown: new MdsError('TEMPLATE_FAILED', 'x'), status: 500, code: 'TEMPLATE_FAILED', level: 'error' },
    { name: 'an invalid configuration', thrown: new MdsError('CONFIG_INVALID', 'x'), status: 500, code: 'CONFIG_INVALID', level: 'error' },
    { name: "a body parser's 413", thrown: Object.assign(new Error('too big'), { status: 413 }), status: 413, code: 'BODY_TOO_LARGE', level: 'warn' },
    { name: "a body parser's 400", thrown: Object.assign(new Error('bad charset'), { status: 415 }), status: 400, code: 'BAD_REQUEST', level: 'warn' },
    { name: 'a bug', thrown: new TypeError('x is undefined'), status: 500, code: 'INTERNAL', level: 'error', unexpected: true },
    { name: 'an error claiming a 5xx status', thrown: Object.assign(new Error('down'), { status: 503 }), status: 500, code: 'INTERNAL', level: 'error', unexpected: true },
    { name: 'a thrown string', thrown: 'oops', status: 500, code: 'INTERNAL', level: 'error', unexpected: true },
    { name: 'a thrown null', thrown: null, status: 500, code: 'INTERNAL', level: 'error', unexpected: true },
  ];
  for (const c of cases) {
    test(`${c.name} is a ${c.status} logged at ${c.level}`, () => {
      const r = errorReply(c.thrown);
      assert.equal(r.status, c.status);
      assert.equal(r.error.code, c.code);
      assert.equal(r.level, c.level);
      assert.equal(r.unexpected, c.unexpected ?? false);
      assert.deepEqual(r.headers, {});
    });
  }

  test('a body error keeps its reason in the message; a bug does not leak its message', () => {
    assert.equal(errorReply(Object.assign(new Error('request entity too large'), { status: 413 })).error.message, 'Bad request: request entity too large');
    assert.equal(errorReply(new Error('secret detail')).error.message, 'Internal error');
  });

  test('an MdsError is passed on as thrown, with its message', () => {
    const e = new MdsError('NOT_FOUND', 'Resource not found: /latest/x');
    assert.equal(errorReply(e).error, e);
  });

  test('a refusal with headers carries them to the reply', () => {
    const allow = errorReply(new HttpError('METHOD_NOT_ALLOWED', 'Method not allowed: DELETE', { Allow: 'GET, HEAD' }));
    assert.equal(allow.status, 405);
    assert.deepEqual(allow.headers, { Allow: 'GET, HEAD' });
    const slow = errorReply(new HttpError('TOO_MANY_REQUESTS', 'Too many requests: slow down', { 'Retry-After': '3' }));
    assert.equal(slow.status, 429);
    assert.deepEqual(slow.headers, { 'Retry-After': '3' });
  });
});

describe('the status table', () => {
  test('every code maps to a client or server error status', () => {
    for (const [code, status] of Object.entries(STATUS)) assert.ok(status >= 400 && status < 600, `${code} -> ${status}`);
  });

  test('levels: 5xx error, 404 and 429 debug, other 4xx warn', () => {
    for (const [status, level] of [[400, 'warn'], [401, 'warn'], [403, 'warn'], [404, 'debug'], [405, 'warn'], [409, 'warn'], [413, 'warn'], [429, 'debug'], [500, 'error'], [503, 'error']] as const) {
      assert.equal(levelOf(status), level, String(status));
    }
  });
});
