// Reading a libvirt domain XML document (parseDomainXml) without a server: the facts taken from
// it, which interface counts, and the refusals, each with its code and what it says.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMdsError } from '../src/errors.js';
import { parseDomainXml, type InterfaceMatch } from '../src/libvirt/domain.js';

const MATCH: InterfaceMatch = { network: 'mds', bridge: 'br-mds' };

interface Parts {
  name?: string;
  uuid?: string;
  metadata?: string;
  os?: string;
  interfaces?: string;
}

function xml(p: Parts = {}): string {
  return `<domain type='kvm'>
  ${p.name ?? '<name>web1</name>'}
  ${p.uuid ?? '<uuid>BECB25C7-B581-4ECD-B60E-A9942AD18879</uuid>'}
  ${p.metadata ?? ''}
  ${p.os ?? "<os><type arch='x86_64' machine='q35'>hvm</type></os>"}
  <devices>${p.interfaces ?? "<interface type='network'><mac address='52:54:00:3A:CF:41'/><source network='mds'/></interface>"}</devices>
</domain>`;
}

const iface = (source: string, mac = '52:54:00:00:00:09'): string =>
  `<interface type='bridge'><mac address='${mac}'/><source ${source}/></interface>`;

describe('parseDomainXml', () => {
  test('takes the name, the uuid in dashed lower case, the MAC in lower case and the arch', () => {
    assert.deepEqual(parseDomainXml(xml(), MATCH), {
      name: 'web1', uuid: 'becb25c7-b581-4ecd-b60e-a9942ad18879', mac: '52:54:00:3a:cf:41', metadata: {}, arch: 'x86_64', nwfilter: null,
    });
  });

  test('a uuid written without dashes is stored with them', () => {
    assert.equal(parseDomainXml(xml({ uuid: '<uuid>becb25c7b5814ecdb60ea9942ad18879</uuid>' }), MATCH).uuid, 'becb25c7-b581-4ecd-b60e-a9942ad18879');
  });

  test('only mdserver: metadata is taken, without its prefix, and only text values', () => {
    const md = `<metadata xmlns:mdserver="urn:md_server:domain_metadata" xmlns:other="urn:x">
      <mdserver:userdata_prefix>web</mdserver:userdata_prefix><mdserver:zone> lab-1a </mdserver:zone>
      <other:thing>no</other:thing><mdserver:nested><a>1</a></mdserver:nested></metadata>`;
    assert.deepEqual(parseDomainXml(xml({ metadata: md }), MATCH).metadata, { userdata_prefix: 'web', zone: 'lab-1a' });
  });

  test('no arch in <os> is null', () => {
    assert.equal(parseDomainXml(xml({ os: '' }), MATCH).arch, null);
  });

  const chosen: [string, string, InterfaceMatch, string][] = [
    ['the interface on the network, not the first one', iface("network='default'") + iface("network='mds'", '52:54:00:00:00:02'), MATCH, '52:54:00:00:00:02'],
    ['an interface on the bridge counts as on the network', iface("bridge='br-mds'", '52:54:00:00:00:03'), MATCH, '52:54:00:00:00:03'],
    ['the first of two on the network', iface("network='mds'", '52:54:00:00:00:04') + iface("network='mds'"), MATCH, '52:54:00:00:00:04'],
  ];
  for (const [label, interfaces, match, mac] of chosen) {
    test(`picks ${label}`, () => assert.equal(parseDomainXml(xml({ interfaces }), match).mac, mac));
  }

  const refusals: [string, string, string, RegExp][] = [
    ['an empty body', '  \n', 'BAD_DOMAIN_XML', /^empty body/],
    ['a DOCTYPE', `<!DOCTYPE d [<!ENTITY x "y">]>${xml()}`, 'BAD_DOMAIN_XML', /DOCTYPE and entity declarations/],
    ['malformed XML, naming the line', '<domain>\n<name>x</name', 'BAD_DOMAIN_XML', /^malformed XML at line \d+/],
    ['another root element', '<network><name>x</name></network>', 'BAD_DOMAIN_XML', /the document root is <network>, not <domain>/],
    ['an empty <domain/>', '<domain/>', 'BAD_DOMAIN_XML', /the <domain> element is empty/],
    ['no name', xml({ name: '' }), 'BAD_DOMAIN_XML', /has no <name>/],
    ['a name with "/"', xml({ name: '<name>a/b</name>' }), 'BAD_DOMAIN_XML', /the domain <name> contains "\/"/],
    ['a name over 255 characters', xml({ name: `<name>${'n'.repeat(256)}</name>` }), 'BAD_DOMAIN_XML', /longer than 255 characters/],
    ['no uuid', xml({ uuid: '' }), 'BAD_DOMAIN_XML', /has no <uuid>/],
    ['a uuid that is not one, quoted', xml({ uuid: '<uuid>XYZ</uuid>' }), 'BAD_DOMAIN_XML', /the domain <uuid> "xyz" is not a UUID/],
    ['no interface on the network', xml({ interfaces: iface("network='default'") }), 'NO_MDS_INTERFACE', /domain web1 has no interface on network "mds" \(or bridge "br-mds"\)/],
    ['its interface without a MAC', xml({ interfaces: "<interface><source network='mds'/></interface>" }), 'BAD_DOMAIN_XML', /has no <mac address>/],
    ['its interface with an invalid MAC', xml({ interfaces: iface("network='mds'", '52:54:00:00:00') }), 'BAD_DOMAIN_XML', /invalid MAC "52:54:00:00:00"/],
  ];
  for (const [label, doc, code, message] of refusals) {
    test(`refuses ${label} as ${code}`, () => {
      assert.throws(() => parseDomainXml(doc, MATCH), (e) => {
        assert.ok(isMdsError(e), String(e));
        assert.equal(e.code, code);
        assert.match(e.message, message);
        return true;
      });
    });
  }

  test("the nwfilter is the metadata interface's <filterref filter>, and null without one", () => {
    const filtered = (source: string, ref: string, mac = '52:54:00:00:00:05'): string =>
      `<interface type='network'><mac address='${mac}'/><source ${source}/>${ref}</interface>`;
    const params = "<filterref filter='clean-traffic'><parameter name='IP' value='10.122.0.5'/></filterref>";
    assert.equal(parseDomainXml(xml({ interfaces: filtered("network='mds'", params) }), MATCH).nwfilter, 'clean-traffic');
    assert.equal(parseDomainXml(xml({ interfaces: filtered("network='mds'", "<filterref filter='my-filter'/>") }), MATCH).nwfilter, 'my-filter');
    const elsewhere = filtered("network='default'", "<filterref filter='clean-traffic'/>", '52:54:00:00:00:06') + filtered("network='mds'", '');
    assert.equal(parseDomainXml(xml({ interfaces: elsewhere }), MATCH).nwfilter, null, 'a filter on another interface does not count');
    assert.throws(() => parseDomainXml(xml({ interfaces: filtered("network='mds'", "<filterref filter='a b'/>") }), MATCH),
      /has a <filterref> without a valid filter name/);
    assert.throws(() => parseDomainXml(xml({ interfaces: filtered("network='mds'", '<filterref/>') }), MATCH), /without a valid filter name/);
  });

  test('with no bridge configured, an interface on some bridge does not count', () => {
    assert.throws(() => parseDomainXml(xml({ interfaces: iface("bridge=''") }), { network: 'mds', bridge: '' }), /no interface on network/);
  });
});
