// XML entities and character references in uploaded domain XML: the predefined five and numeric
// references are decoded before anything is stored or served, and a reference that is unknown,
// out of range or too long is refused with a 400 rather than stored or guessed at.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isMdsError } from '../src/errors.js';
import { decodeXmlText } from '../src/libvirt/entities.js';
import { parseDomainXml } from '../src/libvirt/domain.js';
import { planSysinfo } from '../src/libvirt/sysinfo.js';
import { domainXml, request, startTestServer, VM1, type TestServer } from './helpers.js';

const MATCH = { network: 'mds', bridge: 'br-mds' };

function domain(name: string, metadata = '', mac = VM1.mac): string {
  return `<domain type='kvm'><name>${name}</name><uuid>${VM1.uuid}</uuid>
  <metadata xmlns:mdserver="urn:md_server:domain_metadata">${metadata}</metadata>
  <devices><interface type='network'><mac address='${mac}'/><source network='mds'/></interface></devices></domain>`;
}

function refusal(xml: string): string {
  try {
    parseDomainXml(xml, MATCH);
  } catch (e) {
    assert.ok(isMdsError(e), String(e));
    assert.equal(e.code, 'BAD_DOMAIN_XML');
    return e.message;
  }
  assert.fail('the document was accepted');
}

describe('character references in domain XML', () => {
  test('the five predefined entities and decimal and hex references are decoded in text', () => {
    const info = parseDomainXml(domain('R&amp;D &lt;lab&gt;', '<mdserver:note>&quot;caf&#233;&quot; &apos;&#x1F600;&apos;</mdserver:note>'), MATCH);
    assert.equal(info.name, 'R&D <lab>');
    assert.deepEqual(info.metadata, { note: `"café" '😀'` });
  });

  test('references in attribute values are decoded too', () => {
    assert.equal(parseDomainXml(domain('web1', '', '52:54:00:3a:cf:4&#49;'), MATCH).mac, '52:54:00:3a:cf:41');
  });

  test('a CDATA section is taken as written', () => {
    assert.deepEqual(parseDomainXml(domain('web1', '<mdserver:raw><![CDATA[a &amp; b]]></mdserver:raw>'), MATCH).metadata, { raw: 'a &amp; b' });
  });

  const refused: [string, string, RegExp][] = [
    ['an entity XML does not define', 'a&nbsp;b', /unknown entity &nbsp;/],
    ['a reference past U+10FFFF', 'a&#x110000;', /&#x110000; refers to a character XML does not allow/],
    ['a reference to a surrogate', 'a&#xD800;', /&#xD800; refers to a character XML does not allow/],
    ['a reference to NUL', 'a&#0;', /&#0; refers to a character XML does not allow/],
    ['a reference to a control character XML forbids', 'a&#1;', /&#1; refers to a character XML does not allow/],
    ['a reference with more digits than any character needs', `a&#${'9'.repeat(40)};`, /has more digits than any character needs/],
    ['an unterminated reference', 'a&#65 b', /malformed XML/],
  ];
  for (const [label, name, message] of refused) {
    test(`refuses ${label}`, () => assert.match(refusal(domain(name)), message));
  }

  test('a bare & in an attribute value is refused', () => {
    assert.match(refusal(domain('web1', '', '52:54:00:3a:cf:41&')), /not an XML entity or character reference/);
  });

  test('decoding is linear: a megabyte of references decodes at once', () => {
    const started = performance.now();
    assert.equal(decodeXmlText('&amp;'.repeat(200_000)).length, 200_000);
    assert.ok(performance.now() - started < 1000);
  });

  test('mdserver sysinfo reads the domain with the same rules', () => {
    assert.equal(planSysinfo(domain('R&amp;D').replace('<devices>', "<os><type>hvm</type></os><devices>"), 'nocloud').name, 'R&D');
    assert.throws(() => planSysinfo(domain('R&bogus;D'), 'nocloud'), /unknown entity &bogus;/);
  });
});

describe('uploads with character references', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(() => srv.close());

  const post = (body: string) => request(srv.port, '/instance-upload', { method: 'POST', body });

  test('the decoded values are what the instance is served', async () => {
    const r = await post(domainXml({ ...VM1, name: 'R&amp;D&#32;lab', metadata: { role: 'db &amp; cache &lt;eu&gt;', city: 'K&#xF8;ge' } }));
    assert.equal(r.status, 201, r.body);
    assert.match(r.body, /^registered R&D lab mac=/);
    const ip = /ipv4=(\S+)/.exec(r.body)?.[1] as string;
    const get = async (p: string): Promise<string> => (await request(srv.port, p, { from: ip })).body;
    assert.equal(await get('/latest/meta-data/tags/instance/role'), 'db & cache <eu>');
    assert.equal(await get('/latest/meta-data/tags/instance/city'), 'Køge');
    const os = JSON.parse(await get('/openstack/latest/meta_data.json')) as { name: string; meta: Record<string, string> };
    assert.equal(os.name, 'R&D lab');
    assert.equal(os.meta['role'], 'db & cache <eu>');
    assert.equal(srv.running.store.byName('R&D lab')?.metadata['role'], 'db & cache <eu>');
  });

  test('a reference that decodes to a newline in the name is refused, naming the name', async () => {
    const r = await post(domainXml({ ...VM1, uuid: '7e0e0e0e-0000-4000-8000-000000000001', mac: '52:54:00:00:10:01', name: 'web&#10;evil' }));
    assert.equal(r.status, 400);
    assert.match(r.body, /<name>/);
    assert.equal(srv.running.store.all().some((i) => i.name.includes('evil')), false);
  });

  test('huge and invalid references are 400s and the server keeps serving', async () => {
    for (const name of [`a&#${'1'.repeat(5000)};`, 'a&#xFFFF;', 'a&lt']) {
      const r = await post(domainXml({ ...VM1, uuid: '7e0e0e0e-0000-4000-8000-000000000002', mac: '52:54:00:00:10:02', name }));
      assert.equal(r.status, 400, name.slice(0, 20));
      assert.match(r.body, /malformed XML/);
    }
    assert.equal((await request(srv.port, '/service/name')).status, 200);
  });
});
