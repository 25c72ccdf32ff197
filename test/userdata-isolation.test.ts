// A tenant cannot choose another instance's template: domain names and `mdserver:` metadata are
// the tenant's to set, so per-instance templates are found only under names that belong to the
// instance (its uuid, its MAC, its name while no other instance answers to it), and a
// userdata_prefix only names templates in the prefix directory.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import winston from 'winston';
import { loadConfig } from '../src/config/index.js';
import { rootLogger } from '../src/log.js';
import { request, startTestServer, tempDir, upload, writeConfig, type DomainSpec, type TestServer } from './helpers.js';

const SECRET = '#cloud-config\npassword: victims-secret\n';
const VICTIM: DomainSpec = { name: 'victim', uuid: 'b1c7e000-0000-4000-8000-000000000001', mac: '52:54:00:b1:c7:01' };
let n = 0;
/** A tenant's domain: its own uuid and MAC, and whatever name and metadata it likes. */
const tenant = (name: string, metadata?: Record<string, string>): DomainSpec => {
  n++;
  return { name, uuid: `a7700000-0000-4000-8000-${String(n).padStart(12, '0')}`, mac: `52:54:00:a7:00:${n.toString(16).padStart(2, '0')}`, metadata };
};

/** The warning lines logged while `body` runs (the test servers run in this process). */
async function warnings(body: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8').trimEnd());
      done();
    },
  });
  const capture = new winston.transports.Stream({ stream, level: 'warn' });
  const root = rootLogger();
  const level = root.level;
  root.level = 'warn';
  root.add(capture);
  try {
    await body();
  } finally {
    root.remove(capture);
    root.level = level;
  }
  return lines;
}

describe('per-instance templates belong to their instance', () => {
  let srv: TestServer;
  let victimIp: string;
  const ud = (f: string): string => path.join(srv.dir, 'userdata', f);
  const userData = (ip: string) => request(srv.port, '/latest/user-data', { from: ip });
  before(async () => {
    srv = await startTestServer();
    victimIp = await upload(srv.port, VICTIM);
  });
  after(() => srv.close());

  test('the uuid template comes first, then the name, then the MAC', async () => {
    const spec = tenant('ordered');
    const ip = await upload(srv.port, spec);
    fs.writeFileSync(ud(spec.mac), 'by mac');
    fs.writeFileSync(ud('ordered.yaml'), 'by name');
    fs.writeFileSync(ud(`${spec.uuid}.yaml`), 'by uuid');
    assert.equal((await userData(ip)).body, 'by uuid');
  });

  test("a domain named after another instance's MAC, uuid, or name plus a suffix gets the built-in template, not that one", async () => {
    fs.writeFileSync(ud(VICTIM.mac), SECRET);
    fs.writeFileSync(ud(`${VICTIM.uuid}.yaml`), SECRET);
    for (const name of [VICTIM.mac, VICTIM.uuid, `${VICTIM.uuid}.yaml`]) {
      const ip = await upload(srv.port, tenant(name));
      const r = await userData(ip);
      assert.equal(r.status, 200, name);
      assert.doesNotMatch(r.body, /victims-secret/, name);
      assert.match(r.body, /^#cloud-config\n/, `${name}: the built-in template`);
    }
    // The victim still gets its own (the uuid template comes first).
    assert.equal((await userData(victimIp)).body, SECRET);
  });

  test('a name template is used by neither of two instances that both answer to its file name', async () => {
    const web = tenant('web');
    const webIp = await upload(srv.port, web);
    fs.writeFileSync(ud('web.yaml'), 'for web');
    assert.equal((await userData(webIp)).body, 'for web');
    const logged = await warnings(async () => {
      const copycatIp = await upload(srv.port, tenant('web.yaml'));
      assert.doesNotMatch((await userData(copycatIp)).body, /for web/);
      assert.doesNotMatch((await userData(webIp)).body, /for web/);
    });
    assert.ok(logged.some((l) => /\[WARN\]: not using a template that may not be this instance's instance="web" file=".*\/web\.yaml" why="instance web\.yaml \(\S+\) answers to that name too"/.test(l)), logged.join('\n'));
  });

  test("a userdata_prefix naming another instance (or its name template) is a 404, never that instance's template", async () => {
    fs.writeFileSync(ud('victim.yaml'), SECRET);
    fs.writeFileSync(ud('victim'), SECRET);
    for (const prefix of ['victim', VICTIM.uuid, VICTIM.mac.replace(/:/g, '-')]) {
      const ip = await upload(srv.port, tenant(`p-${prefix}`, { userdata_prefix: prefix }));
      const r = await userData(ip);
      assert.equal(r.status, 404, prefix);
      assert.doesNotMatch(r.body, /victims-secret/);
    }
  });
});

describe('legacy_prefixes keeps md_server\'s flat layout working for the prefixes it lists', () => {
  test('a listed prefix finds its flat template after the prefixes directory; never one another instance answers to', async () => {
    const srv = await startTestServer({ mdserver: { legacy_prefixes: 'web, victim' } });
    try {
      const ud = (f: string): string => path.join(srv.dir, 'userdata', f);
      fs.writeFileSync(ud('web.yaml'), 'flat web');
      fs.writeFileSync(ud('victim.yaml'), SECRET);
      await upload(srv.port, VICTIM);
      const webIp = await upload(srv.port, tenant('w1', { userdata_prefix: 'web' }));
      assert.equal((await request(srv.port, '/latest/user-data', { from: webIp })).body, 'flat web');
      fs.mkdirSync(ud('prefixes'));
      fs.writeFileSync(ud('prefixes/web.yaml'), 'moved web');
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal((await request(srv.port, '/latest/user-data', { from: webIp })).body, 'moved web');
      const attackerIp = await upload(srv.port, tenant('w2', { userdata_prefix: 'victim' }));
      assert.equal((await request(srv.port, '/latest/user-data', { from: attackerIp })).status, 404);
    } finally {
      await srv.close();
    }
  });

  test('a prefix template left in the flat layout is not used, and a warning says how to move it', async () => {
    const srv = await startTestServer();
    try {
      fs.writeFileSync(path.join(srv.dir, 'userdata', 'web.yaml'), 'flat web');
      const logged = await warnings(async () => {
        const ip = await upload(srv.port, tenant('w3', { userdata_prefix: 'web' }));
        assert.equal((await request(srv.port, '/latest/user-data', { from: ip })).status, 404);
      });
      assert.ok(logged.some((l) => /\[WARN\]: not using a template .* why="md_server's flat layout: move it to prefixes\/, or list \\"web\\" in \[mdserver\] legacy_prefixes"/.test(l)), logged.join('\n'));
    } finally {
      await srv.close();
    }
  });
});

describe('the prefix settings', () => {
  const problems = (mdserver: Record<string, string>): string => {
    const dir = tempDir();
    try {
      loadConfig(writeConfig(dir, { mdserver }));
      return '';
    } catch (e) {
      return (e as Error).message;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  test('userdata_prefix_dir must be a directory inside userdata_dir, and legacy_prefixes prefix names', () => {
    for (const dir of ['.', '..', '../elsewhere', 'a/../..', '/etc/mdserver']) {
      assert.match(problems({ userdata_prefix_dir: dir }), /userdata_prefix_dir = .*expected a directory inside userdata_dir/, dir);
    }
    assert.equal(problems({ userdata_prefix_dir: 'shared/templates/' }), '');
    assert.match(problems({ legacy_prefixes: 'web ../x' }), /legacy_prefixes = .*"\.\.\/x" is not a prefix name/);
    assert.equal(problems({ legacy_prefixes: 'web,db  cache' }), '');
  });
});
