// `mdserver sysinfo --filter`: the clean-traffic nwfilter added to the domain's interface on the
// metadata network, byte for byte everywhere else, and what an upload then records.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { XMLValidator } from 'fast-xml-parser';
import { parseDomainXml } from '../src/libvirt/domain.js';
import { addCleanTraffic } from '../src/libvirt/filterref.js';
import { applySysinfo, planSysinfo } from '../src/libvirt/sysinfo.js';
import { domainXml, tempDir, VM1 } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'mdserver');
const FIXTURE_FILE = path.join(ROOT, 'test', 'fixtures', 'sysinfo-domain.xml');
const FIXTURE = fs.readFileSync(FIXTURE_FILE, 'utf8');
const SIMPLE = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'test1-domain.xml'), 'utf8');
const MDS = { network: 'mds', bridge: 'br-mds' };
const LINE = "<filterref filter='clean-traffic'/>";

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'sysinfo', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `text` copied into a fresh directory as `name`; returns its path. */
function copy(name: string, text: string, mode = 0o644): string {
  const file = path.join(tempDir(), name);
  fs.writeFileSync(file, text, { mode });
  return file;
}

describe('mdserver sysinfo --filter', () => {
  test('--apply adds one <filterref> line as the last child of that interface, indented like its siblings, and nothing else', () => {
    const file = copy('web2.xml', FIXTURE, 0o640);
    const r = cli(['--filter', '--apply', file]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /added <filterref filter='clean-traffic'\/> to its interface on the metadata network/);
    assert.match(r.stdout, /Then: virsh define .*web2\.xml/);
    assert.match(r.stdout, /records the filter from the domain's next upload/);
    const out = fs.readFileSync(file, 'utf8');
    assert.equal(out, FIXTURE.replace('\t\t\t<model type="virtio"/>\n', `\t\t\t<model type="virtio"/>\n\t\t\t${LINE}\n`));
    assert.equal(XMLValidator.validate(out), true);
    assert.equal(fs.statSync(file).mode & 0o777, 0o640);
    assert.equal(parseDomainXml(out, MDS).nwfilter, 'clean-traffic', 'what an upload of the edited domain records');
    const again = cli(['--filter', '--apply', file]);
    assert.equal(again.status, 0);
    assert.match(again.stdout, /already has the clean-traffic filter; nothing changed/);
    assert.equal(fs.readFileSync(file, 'utf8'), out);
  });

  const hasVirsh = spawnSync('virsh', ['--version'], { stdio: 'ignore' }).status === 0;
  test("the edited domain passes libvirt's own schema", { skip: hasVirsh ? false : 'needs virsh (libvirt-clients)' }, () => {
    const file = copy('web2.xml', FIXTURE);
    assert.equal(cli(['--style', 'ec2', '--filter', '--apply', file]).status, 0);
    const r = spawnSync('virsh', ['-c', 'test:///default', 'define', '--validate', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  test('with --style, the sysinfo and the filter are written together', () => {
    const file = copy('test1.xml', SIMPLE);
    const r = cli(['--style', 'nocloud', '--filter', '--apply', file]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /set the nocloud sysinfo; added <filterref/);
    assert.equal(fs.readFileSync(file, 'utf8'), addCleanTraffic(applySysinfo(SIMPLE, planSysinfo(SIMPLE, 'nocloud')), MDS));
  });

  test('only the interface on the metadata network gets it; --network names another network', () => {
    const other = "<interface type='network'><mac address='52:54:00:00:00:07'/><source network='default'/></interface>";
    const xml = domainXml({ ...VM1, network: 'lab', extraInterfaces: other });
    const file = copy('lab.xml', xml);
    assert.equal(cli(['--filter', '--apply', '--network', 'lab', '--bridge', 'virbr9', file]).status, 0);
    const out = fs.readFileSync(file, 'utf8');
    assert.equal(parseDomainXml(out, { network: 'lab', bridge: '' }).nwfilter, 'clean-traffic');
    assert.equal(out.match(/<filterref/g)?.length, 1);
    assert.ok(out.includes(other), 'the other interface is untouched');
  });

  test('a document on one line stays on one line', () => {
    const one = domainXml(VM1).replace(/\n\s*/g, '');
    const out = addCleanTraffic(one, MDS);
    assert.equal(out, one.replace("<model type='virtio'/></interface>", `<model type='virtio'/>${LINE}</interface>`));
  });

  test('without --apply it prints the element and says where it goes', () => {
    const r = cli(['--filter', path.join(ROOT, 'test', 'fixtures', 'test1-domain.xml')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${LINE}\n`);
    assert.match(r.stderr, /inside the <interface> whose source is network "mds" \(or bridge "br-mds"\)/);
  });

  test('another filter already there, or no interface on the network, is refused and the file left alone', () => {
    const otherXml = domainXml({ ...VM1, nwfilter: 'tenant-rules' });
    const other = copy('other.xml', otherXml);
    const r = cli(['--filter', '--apply', other]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /already has <filterref filter='tenant-rules'>: if that filter includes clean-traffic, add "tenant-rules" to \[mdserver\] trusted_filters/);
    assert.equal(fs.readFileSync(other, 'utf8'), otherXml);
    const elsewhereXml = domainXml({ ...VM1, network: 'default' }).replace("bridge='br-mds'", "bridge='virbr0'");
    const elsewhere = copy('elsewhere.xml', elsewhereXml);
    const e = cli(['--filter', '--apply', elsewhere]);
    assert.equal(e.status, 1);
    assert.match(e.stderr, /no <interface> on network "mds" \(or bridge "br-mds"\)/);
    assert.equal(fs.readFileSync(elsewhere, 'utf8'), elsewhereXml);
  });
});
