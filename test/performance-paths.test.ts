// The shortcuts taken for speed (grouped upload commits, the verified-token cache, user-data
// rendered once per template version, dropped log levels) must not change what a client sees.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { configureLogging, isLogged, moduleLogger, rootLogger } from '../src/log.js';
import { TokenIssuer } from '../src/metadata/token.js';
import { domainXml, request, startTestServer, type DomainSpec } from './helpers.js';

/** A server on a free port (the schema of this tree refuses port 0). */
async function server() {
  const port = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(p));
    });
  });
  return startTestServer({ mdserver: { port } });
}

function vm(i: number): DomainSpec {
  const hex = i.toString(16).padStart(12, '0');
  return { name: `group${i}`, uuid: `6a1f0c3e-0000-4000-8000-${hex}`, mac: `52:54:00:10:00:${(i & 255).toString(16).padStart(2, '0')}` };
}

function post(port: number, spec: DomainSpec) {
  return request(port, '/instance-upload', { method: 'POST', body: domainXml(spec), headers: { 'Content-Type': 'application/xml' } });
}

test('uploads that arrive together are all registered, each with its own address, and all reach the dnsmasq files', async () => {
  const s = await server();
  try {
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => post(s.port, vm(i))));
    assert.deepEqual(replies.map((r) => r.status), Array.from({ length: 20 }, () => 201));
    const ips = replies.map((r) => /ipv4=(\S+)/.exec(r.body)?.[1]);
    assert.equal(new Set(ips).size, 20);
    s.running.services.dnsmasq.flush();
    const hosts = fs.readFileSync(path.join(s.dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts'), 'utf8');
    for (const ip of ips) assert.match(hosts, new RegExp(`,${(ip as string).replace(/\./g, '\\.')},`));
  } finally {
    await s.close();
  }
});

test('a conflicting upload in a group fails alone with 409 while the others are stored', async () => {
  const s = await server();
  try {
    const thief = { ...vm(2), name: 'thief', uuid: '6a1f0c3e-0000-4000-8000-ffffffffffff' };
    const replies = await Promise.all([post(s.port, vm(1)), post(s.port, vm(2)), post(s.port, thief), post(s.port, vm(3))]);
    assert.deepEqual(replies.map((r) => r.status), [201, 201, 409, 201]);
    assert.match(replies[2]?.body ?? '', /already belongs to domain group2/);
    assert.equal(s.running.store.count(), 3);
  } finally {
    await s.close();
  }
});

test('a token checked once from its own address is still refused from another address', () => {
  const tokens = new TokenIssuer();
  const t = tokens.issue('127.1.0.5', 60);
  assert.equal(tokens.check(t, '127.1.0.5'), 'valid');
  assert.equal(tokens.check(t, '127.1.0.5'), 'valid');
  assert.equal(tokens.check(t, '127.1.0.6'), 'invalid');
});

test('a remembered token still expires on time', () => {
  let now = 1_000_000;
  const tokens = new TokenIssuer(undefined, () => now);
  const t = tokens.issue('127.1.0.5', 2);
  assert.equal(tokens.check(t, '127.1.0.5'), 'valid');
  now += 2001;
  assert.equal(tokens.check(t, '127.1.0.5'), 'expired');
});

test('user-data follows an edited template although each rendering is reused', async () => {
  const s = await server();
  try {
    const r = await post(s.port, { name: 'tmpl1', uuid: '7b2e1d4f-0000-4000-8000-000000000001', mac: '52:54:00:20:00:01' });
    const ip = /ipv4=(\S+)/.exec(r.body)?.[1] as string;
    const file = path.join(s.dir, 'userdata', 'tmpl1.yaml');
    fs.writeFileSync(file, '#cloud-config\nhostname: {{hostname}}\n');
    const first = await request(s.port, '/latest/user-data', { from: ip });
    assert.equal(first.body, '#cloud-config\nhostname: tmpl1\n');
    assert.equal((await request(s.port, '/latest/user-data', { from: ip })).body, first.body);
    fs.writeFileSync(file, '#cloud-config\nfqdn: {{hostname}}.example.test\n');
    // File checks are trusted for a second (see UserdataRenderer's checkMs).
    await new Promise((res) => setTimeout(res, 1100));
    assert.equal((await request(s.port, '/latest/user-data', { from: ip })).body, '#cloud-config\nfqdn: tmpl1.example.test\n');
  } finally {
    await s.close();
  }
});

test('a module logger writes nothing below the configured level and everything at or above it', () => {
  const lines: string[] = [];
  const log = moduleLogger('perf-test');
  const root = rootLogger();
  const seen = (i: { message: string }): void => {
    lines.push(i.message);
  };
  root.on('data', seen);
  try {
    configureLogging({ base: 'info', stream: 'info', file: 'info', debug: false, logfile: null });
    assert.equal(isLogged('debug'), false);
    log.debug('hidden');
    log.info('shown');
    configureLogging({ base: 'debug', stream: 'debug', file: 'debug', debug: false, logfile: null });
    assert.equal(isLogged('debug'), true);
    log.debug('shown too');
  } finally {
    root.off('data', seen);
  }
  assert.deepEqual(lines, ['shown', 'shown too']);
});
