// Tenants choose their domain's name and `mdserver:` metadata, and templates print both into YAML
// user-data. Characters that end a line for cloud-init's YAML reader (control characters and
// U+0085, U+2028, U+2029) are refused at upload, naming the field; `yaml_quote` (Bottle and eta)
// writes any value as one quoted YAML scalar, checked here with PyYAML, cloud-init's own parser.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { yamlQuote } from '../src/metadata/yaml.js';
import { convertBottle } from '../src/userdata/bottle.js';
import { compileTemplate } from '../src/userdata/renderer.js';
import { domainXml, request, startTestServer, upload, VM1, type TestServer } from './helpers.js';

const hasPyYaml = spawnSync('python3', ['-c', 'import yaml'], { stdio: 'ignore' }).status === 0;
const pyYaml = { skip: hasPyYaml ? false : 'python3 with PyYAML is not installed (scripts/install-test-deps.sh installs it)' };

/** What cloud-init's YAML reader makes of `text`. */
function loadYaml(text: string): unknown {
  const r = spawnSync('python3', ['-c', 'import sys, yaml, json; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as unknown;
}

const SEPARATORS: [string, string][] = [['U+2028', '\u2028'], ['U+2029', '\u2029'], ['U+0085', '\u0085']];
const INJECTED = 'runcmd: [reboot]';

describe('names and metadata that could add lines to user-data are refused at upload', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(() => srv.close());

  const post = (body: string) => request(srv.port, '/instance-upload', { method: 'POST', body });
  const spec = (n: number) => ({ uuid: `5e0e0e0e-0000-4000-8000-00000000000${n}`, mac: `52:54:00:00:20:0${n}` });

  for (const [i, [label, sep]] of SEPARATORS.entries()) {
    test(`a name holding ${label} is a 400 naming <name> and the character, and nothing is stored`, async () => {
      const r = await post(domainXml({ ...spec(i), name: `web${sep}${INJECTED}` }));
      assert.equal(r.status, 400);
      assert.match(r.body, new RegExp(`the domain <name> contains ${label.replace('+', '\\+')}`));
      assert.equal(srv.running.store.count(), 0);
    });

    test(`an mdserver: metadata value holding ${label} is a 400 naming the element`, async () => {
      const r = await post(domainXml({ ...spec(i), name: 'web', metadata: { role: `db${sep}${INJECTED}` } }));
      assert.equal(r.status, 400);
      assert.match(r.body, new RegExp(`the value of <mdserver:role> contains ${label.replace('+', '\\+')}`));
      assert.equal(srv.running.store.count(), 0);
    });
  }

  test('a newline, a tab or a C1 control in a metadata value is refused too, written raw or as a reference', async () => {
    for (const [value, cp] of [['a\nb', '000A'], ['a\tb', '0009'], ['a\u0080b', '0080'], ['a&#x2028;b', '2028'], ['a&#133;b', '0085']] as const) {
      const r = await post(domainXml({ ...spec(5), name: 'web', metadata: { motd: value } }));
      assert.equal(r.status, 400, JSON.stringify(value));
      assert.match(r.body, new RegExp(`<mdserver:motd> contains U\\+${cp}`));
    }
    assert.equal(srv.running.store.count(), 0);
  });

  test('other Unicode in names and metadata is kept as it is', async () => {
    const ip = await upload(srv.port, { ...spec(6), name: 'café-Ωmega', metadata: { note: 'naïve “quotes” 😀' } });
    const os = JSON.parse((await request(srv.port, '/openstack/latest/meta_data.json', { from: ip })).body) as { name: string; meta: Record<string, string> };
    assert.equal(os.name, 'café-Ωmega');
    assert.equal(os.meta['note'], 'naïve “quotes” 😀');
  });
});

describe('yaml_quote', () => {
  const VALUES = [
    'plain', 'yes', 'no', 'null', '1e3', '0x1F', '~', 'a: b', 'x # not a comment', '- item', '*alias', '&anchor', '!tag',
    '"double" and \'single\'', 'back\\slash', `web\u2028${INJECTED}`, `web\u2029${INJECTED}`, `web\u0085${INJECTED}`,
    `web\n${INJECTED}`, 'tab\there', 'del\u007f c1\u0080\u009f bom\ufeff nonchar\uffff', 'café 😀', '', ' leading and trailing ',
  ];

  test('every value comes back from PyYAML exactly, as the only key of its line', pyYaml, () => {
    const doc = VALUES.map((v, i) => `k${i}: ${yamlQuote(v)}`).join('\n') + '\n';
    assert.equal(doc.split('\n').length, VALUES.length + 1, 'one line per value');
    assert.deepEqual(loadYaml(doc), Object.fromEntries(VALUES.map((v, i) => [`k${i}`, v])));
  });

  test('Bottle {{yaml_quote(x)}} and eta it.yaml_quote(x) give the same, never HTML-escaped', () => {
    const render = (t: string) => compileTemplate(t, 'q.yaml')({ name: 'a<b> & "c"', n: 3, yaml_quote: (v: string) => yamlQuote(v) });
    const quoted = '"a<b> & \\"c\\""';
    assert.equal(render('{{yaml_quote(name)}}'), quoted);
    assert.equal(render('{{!yaml_quote(name)}}'), quoted);
    assert.equal(render('<%= it.yaml_quote(it.name) %>'), quoted);
    assert.equal(render("{{yaml_quote(name + '.example')}}"), '"a<b> & \\"c\\".example"');
    assert.equal(render('{{yaml_quote(n)}}'), '"3"');
  });

  test('only yaml_quote can be called by name, and with one argument', () => {
    assert.throws(() => convertBottle('{{open(name)}}', 't.yaml'), /t\.yaml:1: cannot use placeholder .*open\(\) is not a function templates may call/);
    assert.throws(() => compileTemplate('{{yaml_quote(name, name)}}', 't.yaml')({ name: 'x' }), /takes 1 argument \(2 given\)/);
  });
});

describe('yaml_quote in served user-data', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(() => srv.close());

  test('values a tenant chose stay single strings in the user-data cloud-init reads', pyYaml, async () => {
    const template = [
      '#cloud-config',
      'hostname: {{yaml_quote(hostname)}}',
      'write_files:',
      '  - path: /etc/role',
      '    content: {{yaml_quote(metadata["role"])}}',
      '  - path: /etc/name',
      '    content: <%= it.yaml_quote(it.name) %>',
      '',
    ].join('\n');
    // A userdata_prefix names a template in the prefixes directory (see [mdserver] userdata_prefix_dir).
    fs.mkdirSync(path.join(srv.dir, 'userdata', 'prefixes'), { recursive: true });
    fs.writeFileSync(path.join(srv.dir, 'userdata', 'prefixes', 'quoted.yaml'), template);
    const role = 'yes # db: {primary: true}';
    const ip = await upload(srv.port, { ...VM1, name: 'no', metadata: { userdata_prefix: 'quoted', role } });
    const r = await request(srv.port, '/latest/user-data', { from: ip });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(loadYaml(r.body), {
      hostname: 'no',
      write_files: [{ path: '/etc/role', content: role }, { path: '/etc/name', content: 'no' }],
    });
  });

  test('the built-in template quotes the host name, so a VM named "yes" is not given the host name True', pyYaml, async () => {
    const ip = await upload(srv.port, { name: 'yes', uuid: '5e0e0e0e-0000-4000-8000-0000000000aa', mac: '52:54:00:00:20:aa' });
    const ud = loadYaml((await request(srv.port, '/latest/user-data', { from: ip })).body) as Record<string, unknown>;
    assert.equal(ud['hostname'], 'yes');
    assert.equal(ud['local-hostname'], 'yes');
    assert.equal(ud['fqdn'], 'yes.localdomain');
    assert.deepEqual(ud['ssh_authorized_keys'], ['ssh-ed25519 AAAAdefaultkey user@host', 'ssh-rsa AAAAsecondkey other@host']);
  });
});
