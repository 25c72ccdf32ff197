// User-data: md_server's template search order and Bottle-compatible rendering with eta.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { convertBottle, evaluate, htmlEscape, parseExpression } from '../src/userdata/bottle.js';
import { compileTemplate } from '../src/userdata/renderer.js';
import { domainXml, request, startTestServer, upload, withVms, type TestServer } from './helpers.js';

describe('Bottle placeholders', () => {
  const render = (t: string, data: Record<string, unknown>) => compileTemplate(t, 'test.yaml')(data);

  test('{{name}} is HTML-escaped exactly as Bottle escapes it, {{!name}} is raw', () => {
    const data = { v: `<a href="x">'&'</a>` };
    assert.equal(render('{{v}}', data), '&lt;a href=&quot;x&quot;&gt;&#039;&amp;&#039;&lt;/a&gt;');
    assert.equal(render('{{!v}}', data), `<a href="x">'&'</a>`);
    assert.equal(htmlEscape(`"'`), '&quot;&#039;');
  });

  test('subscripts, string methods, or/and, + and literals evaluate as in Python', () => {
    const data = { public_keys: { default: 'ssh-rsa K' }, hostname: 'Web1', empty: '', n: 3, none: null, list: ['a', 'b'] };
    assert.equal(render("{{public_keys['default']}}", data), 'ssh-rsa K');
    assert.equal(render('{{public_keys["default"]}}', data), 'ssh-rsa K');
    assert.equal(render('{{hostname.lower()}}-{{hostname.upper()}}', data), 'web1-WEB1');
    assert.equal(render("{{empty or 'fallback'}}", data), 'fallback');
    assert.equal(render("{{hostname + '.example'}}", data), 'Web1.example');
    assert.equal(render('{{n}} {{none}} {{True}}', data), '3  True');
    assert.equal(render("{{', '.join(list)}}", data), 'a, b');
    assert.equal(render('{{list}}', data), '[&#039;a&#039;, &#039;b&#039;]');
    assert.equal(render("{{public_keys.get('missing', 'none')}}", data), 'none');
  });

  test('text around placeholders, including newlines and backticks, is kept byte for byte', () => {
    const t = '#cloud-config\nruncmd:\n  - echo `date` ${HOME} \\n {{x}}\n\n';
    assert.equal(render(t, { x: 'y' }), '#cloud-config\nruncmd:\n  - echo `date` ${HOME} \\n y\n\n');
  });

  test('an undefined name is an error at render time, as Python raises NameError', () => {
    assert.throws(() => render('{{nope}}', {}), /name 'nope' is not defined/);
  });

  test("Bottle's % code lines are refused naming the file and line", () => {
    assert.throws(() => convertBottle('#cloud-config\n% for k in keys:\n  - {{k}}\n% end\n', 'web.yaml'), /web\.yaml:2: Bottle "%" code lines/);
  });

  test('placeholders outside the supported subset are refused naming the line', () => {
    assert.throws(() => convertBottle('a\nb {{__import__("os").system("x")}}', 'x.yaml'), /x\.yaml:2: cannot use placeholder/);
    assert.throws(() => parseExpression('a; b'), /unexpected/);
  });

  test('eta syntax works in the same template', () => {
    assert.equal(render('<%= it.hostname %> {{hostname}}', { hostname: 'h' }), 'h h');
    assert.equal(evaluate(parseExpression("not ''"), {}), true);
  });
});

describe('user-data over HTTP', () => {
  let srv: TestServer;
  const ud = (f: string) => path.join(srv.dir, 'userdata', f);
  before(async () => {
    srv = await startTestServer({
      mdserver: { password: '$6$hash' },
      'template-data': { foo: 'bar', hostname: 'never-wins', _config_items_: 'dnsmasq.gateway,service.location' },
      service: { location: 'lab' },
    });
  });
  after(() => srv.close());

  const vm = (n: number) => ({ name: `ud${n}`, uuid: `aaaaaaaa-0000-0000-0000-00000000000${n}`, mac: `52:54:00:00:aa:0${n}` });
  const userData = async (ip: string) => request(srv.port, '/latest/user-data', { from: ip });

  test('<name> wins over <name>.yaml, which wins over <MAC>, then <MAC>.yaml', async () => {
    const ip = await upload(srv.port, vm(1));
    fs.writeFileSync(ud('52:54:00:00:aa:01.yaml'), 'mac-yaml');
    assert.equal((await userData(ip)).body, 'mac-yaml');
    fs.writeFileSync(ud('52:54:00:00:aa:01'), 'mac');
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await userData(ip)).body, 'mac');
    fs.writeFileSync(ud('ud1.yaml'), 'name-yaml');
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await userData(ip)).body, 'name-yaml');
    fs.writeFileSync(ud('ud1'), 'name');
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await userData(ip)).body, 'name');
  });

  test('default_template is used when nothing more specific exists', async () => {
    const s2 = await startTestServer({ mdserver: { default_template: 'base.yaml' } });
    try {
      fs.writeFileSync(path.join(s2.dir, 'base.yaml'), 'base for {{hostname}}');
      const ip = await upload(s2.port, vm(2));
      assert.equal((await request(s2.port, '/latest/user-data', { from: ip })).body, 'base for ud2');
    } finally {
      await s2.close();
    }
  });

  test('template data: keys, password, [template-data], _config_items_ and instance fields; core names win', async () => {
    const ip = await upload(srv.port, vm(3));
    fs.writeFileSync(
      ud('ud3.yaml'),
      '{{hostname}}|{{public_key_default}}|{{public_keys["second"]}}|{{mdserver_password}}|{{foo}}|{{gateway}}|{{location}}|{{mac}}|{{ipv4}}|{{instance_id}}|{{uuid}}',
    );
    const r = await userData(ip);
    assert.equal(r.body, `ud3|ssh-ed25519 AAAAdefaultkey user@host|ssh-rsa AAAAsecondkey other@host|$6$hash|bar|127.1.0.1|lab|52:54:00:00:aa:03|${ip}|i-${ip}|aaaaaaaa-0000-0000-0000-000000000003`);
  });

  test('a userdata_prefix is the only template tried, in the prefixes directory: missing is 404', async () => {
    const ip = await upload(srv.port, { ...vm(4), metadata: { userdata_prefix: 'special' } });
    fs.writeFileSync(ud('ud4.yaml'), 'would match by name');
    fs.writeFileSync(ud('special.yaml'), "md_server's flat layout, not used");
    const r = await userData(ip);
    assert.equal(r.status, 404);
    fs.mkdirSync(ud('prefixes'), { recursive: true });
    fs.writeFileSync(ud('prefixes/special.yaml'), 'special');
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await userData(ip)).body, 'special');
  });

  test('a userdata_prefix that could leave the directory is refused at upload with a 400, and nothing is stored', async () => {
    for (const [i, prefix] of ['../../etc/passwd', '..', 'a/b', '.hidden', ''].entries()) {
      const spec = { name: `esc${i}`, uuid: `bbbbbbbb-0000-0000-0000-00000000000${i}`, mac: `52:54:00:00:bb:0${i}`, metadata: { userdata_prefix: prefix } };
      const r = await request(srv.port, '/instance-upload', { method: 'POST', body: domainXml(spec) });
      assert.equal(r.status, 400, prefix);
      assert.equal(
        r.body,
        `userdata_prefix "${prefix}" of domain esc${i} is not a template name: it may only name a template in prefixes/ of the userdata directory ` +
          '(letters, digits, ".", "_" and "-", not starting with ".")',
      );
      assert.equal(srv.running.services.registry.get(`esc${i}`), undefined);
    }
  });

  test('a template that fails to render is a 500 naming the instance, and the server keeps serving', async () => {
    const ip = await upload(srv.port, vm(5));
    fs.writeFileSync(ud('ud5'), 'oops {{undefined_name}}');
    const r = await userData(ip);
    assert.equal(r.status, 500);
    assert.equal(r.body, 'Userdata templating failure for ud5');
    assert.equal((await request(srv.port, '/latest/meta-data/hostname', { from: ip })).body, 'ud5');
  });

  test('a Bottle % line is a 500 too, never Python run', async () => {
    const ip = await upload(srv.port, vm(6));
    fs.writeFileSync(ud('ud6'), '% import os\n{{hostname}}');
    assert.equal((await userData(ip)).status, 500);
  });

  test('an edited template is picked up without a restart', async () => {
    const ip = await upload(srv.port, vm(7));
    fs.writeFileSync(ud('ud7'), 'one');
    assert.equal((await userData(ip)).body, 'one');
    fs.writeFileSync(ud('ud7'), 'two, longer');
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await userData(ip)).body, 'two, longer');
  });
});

describe('debug_userdata', () => {
  test('writes the rendered result into run_dir, readable by its owner only', async () => {
    const dbg = { name: 'dbg', uuid: 'cccccccc-0000-0000-0000-000000000001', mac: '52:54:00:00:cc:01' };
    await withVms({ mdserver: { debug_userdata: 'yes' } }, [dbg], async (srv, ip) => {
      const body = (await request(srv.port, '/latest/user-data', { from: ip })).body;
      const file = path.join(srv.dir, 'run', `${ip}.userdata`);
      assert.equal(fs.readFileSync(file, 'utf8'), body);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    });
  });
});
