// `mdserver sysinfo`: the elements printed for each style, and --apply editing a domain XML file
// in place without touching anything else in it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { applySysinfo, ec2Uuid, looksLikeEc2, planSysinfo, STYLES } from '../src/libvirt/sysinfo.js';
import { scanXml } from '../src/libvirt/xmlspan.js';
import { domainXml, tempDir, VM1 } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'mdserver');
const FIXTURE = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'sysinfo-domain.xml'), 'utf8');
const SIMPLE = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'test1-domain.xml'), 'utf8');

function cli(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'sysinfo', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Lines of `a` missing from `b` and lines of `b` missing from `a`, by longest common subsequence. */
function lineDiff(a: string, b: string): { removed: string[]; added: string[] } {
  const x = a.split('\n');
  const y = b.split('\n');
  const lcs: number[][] = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      lcs[i]![j] = x[i] === y[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const removed: string[] = [];
  const added: string[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    if (x[i] === y[j]) {
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) removed.push(x[i++]!.trim());
    else added.push(y[j++]!.trim());
  }
  removed.push(...x.slice(i).map((l) => l.trim()));
  added.push(...y.slice(j).map((l) => l.trim()));
  return { removed, added };
}

type Obj = Record<string, unknown>;
const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, isArray: (n) => ['entry', 'sysinfo'].includes(n) });

/** The <system> entries of the smbios <sysinfo> as name -> value. */
function systemEntries(xml: string): Record<string, string> {
  const d = (parser.parse(xml) as Obj)['domain'] as Obj;
  const s = ((d['sysinfo'] as Obj[]).find((x) => x['@type'] === 'smbios') ?? {})['system'] as Obj;
  return Object.fromEntries(((s['entry'] as Obj[]) ?? []).map((e) => [e['@name'], e['#text']]));
}

describe('mdserver sysinfo prints the elements for a style', () => {
  test('ec2: serial and uuid equal, starting with ec2, and the domain uuid to match', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'test1.xml'), SIMPLE);
    const r = cli(['--style', 'ec2', path.join(dir, 'test1.xml')]);
    assert.equal(r.status, 0, r.stderr);
    const u = 'ec2b25c7-b581-4ecd-b60e-a9942ad18879';
    assert.equal(
      r.stdout,
      `  <uuid>${u}</uuid>\n  <sysinfo type='smbios'>\n    <system>\n      <entry name='serial'>${u}</entry>\n` +
        `      <entry name='uuid'>${u}</entry>\n    </system>\n  </sysinfo>\n  <os>\n    <smbios mode='sysinfo'/>\n  </os>\n`,
    );
    assert.match(r.stderr, /define test1 anew under ec2b25c7/);
    assert.match(r.stderr, /virsh undefine test1/);
    // The record follows the new uuid only when the host says so (an upload under another uuid is refused).
    assert.match(r.stderr, new RegExp(`^  mdserver instances rekey test1 --uuid ${u}$`, 'm'));
    assert.match(r.stderr, /keeps its\naddress and instance id/);
    fs.rmSync(dir, { recursive: true });
  });

  test('openstack: product OpenStack Nova', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'test1.xml'), SIMPLE);
    const r = cli(['--style=openstack', path.join(dir, 'test1.xml')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /<entry name='product'>OpenStack Nova<\/entry>/);
    assert.doesNotMatch(r.stdout, /<uuid>/);
    fs.rmSync(dir, { recursive: true });
  });

  test('nocloud: the serial names the seed on 169.254.169.254, or the URL given', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'test1.xml'), SIMPLE);
    const r = cli(['--style', 'nocloud', path.join(dir, 'test1.xml')]);
    assert.match(r.stdout, /<entry name='serial'>ds=nocloud-net;s=http:\/\/169\.254\.169\.254\/nocloud\/<\/entry>/);
    const u = cli(['--style', 'nocloud', '--url', 'http://10.0.0.1:8080/nocloud/', path.join(dir, 'test1.xml')]);
    assert.match(u.stdout, /s=http:\/\/10\.0\.0\.1:8080\/nocloud\/</);
    const bad = cli(['--style', 'nocloud', '--url', 'http://10.0.0.1/nocloud', path.join(dir, 'test1.xml')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /must .* end in "\/"/);
    fs.rmSync(dir, { recursive: true });
  });

  test('a domain name is read with virsh dumpxml --inactive', () => {
    const dir = tempDir();
    // libvirt does not run here: a stand-in virsh answers dumpxml for one domain.
    fs.writeFileSync(
      path.join(dir, 'virsh'),
      `#!/bin/sh\n[ "$1 $2 $3 $4" = "dumpxml --inactive --domain test1" ] && exec cat '${path.join(ROOT, 'test', 'fixtures', 'test1-domain.xml')}'\necho "error: failed to get domain '$4'" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    const env = { PATH: `${dir}:${process.env['PATH'] ?? ''}` };
    const r = cli(['--style', 'openstack', 'test1'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /OpenStack Nova/);
    assert.match(r.stderr, /virsh edit test1/);
    const missing = cli(['--style', 'openstack', 'nosuch'], env);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /failed to get domain 'nosuch'/);
    const apply = cli(['--style', 'openstack', '--apply', 'test1'], env);
    assert.equal(apply.status, 2);
    assert.match(apply.stderr, /virsh dumpxml --inactive test1 > test1\.xml/);
    fs.rmSync(dir, { recursive: true });
  });

  test('bad arguments and bad documents are refused with a reason', () => {
    const dir = tempDir();
    const cases: [string[], number, RegExp][] = [
      [['x.xml'], 2, /--style or --filter is required/],
      [['--style', 'azure', 'x.xml'], 2, /unknown style "azure"/],
      [['--style', 'ec2'], 2, /expected one domain XML file/],
      [['--style', 'ec2', '--force', 'x.xml'], 2, /unknown option --force/],
      [['--style', 'ec2', path.join(dir, 'missing.xml')], 1, /ENOENT|no such file/],
    ];
    fs.writeFileSync(path.join(dir, 'net.xml'), "<network><name>mds</name></network>");
    fs.writeFileSync(path.join(dir, 'broken.xml'), '<domain><name>x</name>');
    fs.writeFileSync(path.join(dir, 'dtd.xml'), '<!DOCTYPE domain [<!ENTITY a "b">]><domain/>');
    cases.push([['--style', 'ec2', path.join(dir, 'net.xml')], 1, /root is <network>, not <domain>/]);
    cases.push([['--style', 'ec2', path.join(dir, 'broken.xml')], 1, /<domain> is never closed/]);
    cases.push([['--style', 'ec2', '--apply', path.join(dir, 'dtd.xml')], 1, /DOCTYPE/]);
    for (const [args, status, msg] of cases) {
      const r = cli(args);
      assert.equal(r.status, status, args.join(' '));
      assert.match(r.stderr, msg, args.join(' '));
    }
    assert.equal(fs.readFileSync(path.join(dir, 'dtd.xml'), 'utf8'), '<!DOCTYPE domain [<!ENTITY a "b">]><domain/>');
    fs.rmSync(dir, { recursive: true });
  });
});

describe('mdserver sysinfo --apply edits the domain XML in place', () => {
  for (const style of STYLES) {
    test(`${style}: only the uuid, the smbios <system> entries and <smbios> change`, () => {
      const dir = tempDir();
      const file = path.join(dir, 'web2.xml');
      fs.writeFileSync(file, FIXTURE, { mode: 0o640 });
      const r = cli(['--style', style, '--apply', file]);
      assert.equal(r.status, 0, r.stderr);
      const out = fs.readFileSync(file, 'utf8');
      assert.equal(fs.statSync(file).mode & 0o777, 0o640);
      assert.equal(XMLValidator.validate(out), true);
      const { removed, added } = lineDiff(FIXTURE, out);
      const entries = systemEntries(out);
      // Untouched by every style: the other entries, blocks and the rest of the document.
      assert.equal(entries['version'], '27.0.0');
      assert.equal(entries['family'], 'Virtual Machine');
      if (style === 'ec2') {
        const u = 'ec2e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
        assert.deepEqual(removed, [
          '<uuid>0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0</uuid>',
          '<entry name="manufacturer">OpenStack Foundation</entry>',
          '<entry name="product">OpenStack Nova</entry>',
          '<smbios mode="host"/>',
        ]);
        assert.deepEqual(added, [
          `<uuid>${u}</uuid>`,
          `<entry name='serial'>${u}</entry>`,
          `<entry name='uuid'>${u}</entry>`,
          "<smbios mode='sysinfo'/>",
        ]);
        assert.deepEqual(entries, { version: '27.0.0', family: 'Virtual Machine', serial: u, uuid: u });
        assert.match(r.stdout, new RegExp(`^  virsh define ${file}\n  mdserver instances rekey \\S+ --uuid ${u}$`, 'm'));
      } else if (style === 'openstack') {
        // Already OpenStack: only <smbios> had to change.
        assert.deepEqual(removed, ['<smbios mode="host"/>']);
        assert.deepEqual(added, ["<smbios mode='sysinfo'/>"]);
      } else if (style === 'cloudstack') {
        // The product is replaced in place and the other style's manufacturer goes; nothing else.
        assert.deepEqual(removed, [
          '<entry name="manufacturer">OpenStack Foundation</entry>',
          '<entry name="product">OpenStack Nova</entry>',
          '<smbios mode="host"/>',
        ]);
        assert.deepEqual(added, ['<entry name="product">CloudStack KVM Hypervisor</entry>', "<smbios mode='sysinfo'/>"]);
      } else {
        assert.deepEqual(removed, [
          '<entry name="manufacturer">OpenStack Foundation</entry>',
          '<entry name="product">OpenStack Nova</entry>',
          '<smbios mode="host"/>',
        ]);
        assert.deepEqual(added, ["<entry name='serial'>ds=nocloud-net;s=http://169.254.169.254/nocloud/</entry>", "<smbios mode='sysinfo'/>"]);
      }
      // The new entries sit inside <system>, indented like their neighbours (tabs here).
      assert.match(out, /\t\t\t<entry name="family">Virtual Machine<\/entry>\n(\t\t\t<entry name='[a-z]+'>[^<]*<\/entry>\n)*\t\t<\/system>/);
      fs.rmSync(dir, { recursive: true });
    });
  }

  test('applying twice changes nothing the second time', () => {
    const dir = tempDir();
    const file = path.join(dir, 'web2.xml');
    for (const style of STYLES) {
      fs.writeFileSync(file, FIXTURE);
      assert.equal(cli(['--style', style, '--apply', file]).status, 0);
      const once = fs.readFileSync(file, 'utf8');
      const again = cli(['--style', style, '--apply', file]);
      assert.equal(again.status, 0);
      assert.match(again.stdout, /nothing changed/);
      assert.equal(fs.readFileSync(file, 'utf8'), once);
    }
    fs.rmSync(dir, { recursive: true });
  });

  test('switching styles leaves no marker of the previous one behind', () => {
    let xml = SIMPLE;
    for (const style of ['openstack', 'nocloud', 'ec2', 'openstack'] as const) {
      xml = applySysinfo(xml, planSysinfo(xml, style));
    }
    const entries = systemEntries(xml);
    assert.equal(entries['product'], 'OpenStack Nova');
    assert.equal(entries['serial'], undefined, 'the ec2 serial is gone');
    // The uuid stays ec2-shaped (libvirt needs the entry to equal it): the warning says so.
    assert.match(planSysinfo(xml, 'openstack').warnings.join('\n'), /looks like an EC2 one/);
  });

  test('a domain without <sysinfo> gets one just before <os>, indented like its siblings', () => {
    const out = applySysinfo(SIMPLE, planSysinfo(SIMPLE, 'nocloud'));
    assert.ok(out.includes(
      "  <vcpu placement='static'>1</vcpu>\n  <sysinfo type='smbios'>\n    <system>\n" +
        "      <entry name='serial'>ds=nocloud-net;s=http://169.254.169.254/nocloud/</entry>\n    </system>\n  </sysinfo>\n  <os>\n",
    ));
    assert.ok(out.includes("    <boot dev='hd'/>\n    <smbios mode='sysinfo'/>\n  </os>\n"));
    assert.deepEqual(lineDiff(SIMPLE, out).removed, []);
  });

  test('a document on one line stays well-formed', () => {
    const one = domainXml(VM1).replace(/\n\s*/g, '');
    for (const style of STYLES) {
      const out = applySysinfo(one, planSysinfo(one, style));
      assert.equal(XMLValidator.validate(out), true, out);
      assert.ok(out.includes("<smbios mode='sysinfo'/></os>"), out);
      assert.equal(applySysinfo(out, planSysinfo(out, style)), out);
    }
  });

  test('characters that are special in XML are escaped in entry values', () => {
    const plan = planSysinfo(SIMPLE, 'nocloud', { nocloudUrl: 'http://10.0.0.1/seed?a=1&b=2/' });
    const out = applySysinfo(SIMPLE, plan);
    assert.ok(out.includes('s=http://10.0.0.1/seed?a=1&amp;b=2/</entry>'));
    assert.equal(systemEntries(out)['serial'], 'ds=nocloud-net;s=http://10.0.0.1/seed?a=1&b=2/');
  });
});

describe('the uuid rules of the ec2 style', () => {
  test('the ec2 uuid replaces the first three digits, and keeps an ec2 uuid as it is', () => {
    assert.equal(ec2Uuid('becb25c7-b581-4ecd-b60e-a9942ad18879'), 'ec2b25c7-b581-4ecd-b60e-a9942ad18879');
    assert.equal(ec2Uuid('ec2b25c7-b581-4ecd-b60e-a9942ad18879'), 'ec2b25c7-b581-4ecd-b60e-a9942ad18879');
  });

  test('current cloud-init sees AWS in either byte order of the first fields', () => {
    assert.equal(looksLikeEc2('EC2E1916-9099-7CAF-FD21-012345ABCDEF'), true);
    assert.equal(looksLikeEc2('45E12AEC-DCD1-B213-94ED-012345ABCDEF'), true);
    assert.equal(looksLikeEc2('becb25c7-b581-4ecd-b60e-a9942ad18879'), false);
  });

  test('a domain without <uuid> gets a fresh ec2 one after <name>', () => {
    const xml = SIMPLE.replace(/\s*<uuid>[^<]*<\/uuid>/, '');
    const plan = planSysinfo(xml, 'ec2', { randomUuid: () => '12345678-9abc-4def-8123-456789abcdef' });
    assert.equal(plan.uuid, 'ec245678-9abc-4def-8123-456789abcdef');
    const out = applySysinfo(xml, plan);
    assert.ok(out.includes('<name>test1</name>\n  <uuid>ec245678-9abc-4def-8123-456789abcdef</uuid>\n'));
  });

  test('the scanner refuses what it cannot splice safely', () => {
    assert.throws(() => scanXml('<domain><a></b></domain>'), /<\/b> does not close <a>/);
    assert.throws(() => scanXml('<domain/><domain/>'), /content after the root element/);
    assert.throws(() => scanXml('<domain a="1" a="2"/>'), /attribute a repeated/);
    assert.throws(() => scanXml('<domain><!-- open'), /unterminated comment/);
  });
});
