// `[mdserver] require_filter` and `trusted_filters`: mdserver records the nwfilter on each VM's
// metadata interface from the uploaded XML, shows it to the admin, and with `require_filter = yes`
// serves no instance data to a VM without a trusted one (403, said in the upload reply), since
// such a VM cannot be told apart from another that copies its MAC and address. The namespace
// test (nwfilter-netns.test.ts) shows the filter itself keeping the copy out.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { configureLogging } from '../src/log.js';
import { domainXml, request, tempDir, upload, VM1, VM2, withVms, writeConfig, type Sections } from './helpers.js';
import { cli } from './process.js';

const conf = (dir: string): string[] => ['--config', path.join(dir, 'mdserver.conf')];
const FILTERED = { ...VM2, nwfilter: 'clean-traffic' };
const INSTANCE_PATHS = [
  '/latest/meta-data/instance-id', '/latest/meta-data/public-keys/0/openssh-key', '/latest/user-data',
  '/openstack/latest/meta_data.json', '/openstack/latest/user_data', '/nocloud/meta-data', '/nocloud/user-data',
];

interface StatusJson {
  warnings: string[];
}

/** The status warnings about nwfilters (others, such as open HTTP uploads, are not this test's). */
async function statusWarnings(dir: string): Promise<{ json: string[]; text: string }> {
  const json = await cli(['status', '--json', ...conf(dir)]);
  const text = await cli(['status', ...conf(dir)]);
  return { json: (JSON.parse(json.stdout) as StatusJson).warnings.filter((w) => w.includes('nwfilter')), text: text.stdout };
}

test('require_filter = yes: a VM without a trusted filter gets 403 on every instance path and its upload reply says why', async () => {
  await withVms({ mdserver: { require_filter: 'yes' } }, [FILTERED], async (t, filteredIp) => {
    const r = await request(t.port, '/instance-upload', { method: 'POST', body: domainXml(VM1) });
    assert.equal(r.status, 201);
    const [first, note] = r.body.split('\n');
    assert.match(first ?? '', /^registered test1 mac=52:54:00:3a:cf:41 ipv4=127\.1\.\d+\.\d+$/);
    assert.match(note ?? '', /^refused: test1 will be served no instance data \(require_filter = yes\): its interface on the metadata network has no nwfilter; add <filterref filter='clean-traffic'\/>/);
    const ip = /ipv4=(\S+)/.exec(r.body)?.[1] as string;
    for (const p of INSTANCE_PATHS) {
      const refused = await request(t.port, p, { from: ip });
      assert.equal(refused.status, 403, p);
      assert.match(refused.body, /no trusted nwfilter \(such as clean-traffic\), and require_filter = yes serves no instance data/, p);
      assert.doesNotMatch(refused.body, /test1|ssh-/, p);
    }
    for (const p of INSTANCE_PATHS) assert.equal((await request(t.port, p, { from: filteredIp })).status, 200, p);
    // The domain is defined again with the filter: the next upload (the hook's, at its next start) lets it in.
    const fixed = await request(t.port, '/instance-upload', { method: 'POST', body: domainXml({ ...VM1, nwfilter: 'clean-traffic' }) });
    assert.equal(fixed.body, `updated test1 mac=${VM1.mac} ipv4=${ip}\n`);
    assert.equal((await request(t.port, '/latest/meta-data/instance-id', { from: ip })).body, `i-${ip}`);
  });
});

test('a filter not in trusted_filters does not count, and listing it there (a reload) makes it count', async () => {
  const custom = { ...VM1, nwfilter: 'tenant-isolation' };
  const sections: Sections = { mdserver: { require_filter: 'yes' } };
  await withVms(sections, [custom], async (t, ip) => {
    assert.equal((await request(t.port, '/latest/meta-data/instance-id', { from: ip })).status, 403);
    writeConfig(t.dir, { mdserver: { require_filter: 'yes', trusted_filters: 'clean-traffic, tenant-isolation' } });
    assert.equal((await cli(['reload', ...conf(t.dir)])).status, 0);
    assert.equal((await request(t.port, '/latest/meta-data/instance-id', { from: ip })).status, 200);
  });
});

test('instances list and show name each VM\'s filter and whether it is trusted', async () => {
  await withVms({}, [VM1, FILTERED, { name: 'custom', uuid: '3f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mac: '52:54:00:11:22:44', nwfilter: 'mine' }], async (t) => {
    const table = await cli(['instances', 'list', ...conf(t.dir)]);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^NAME .* NWFILTER +STATUS$/m);
    assert.match(table.stdout, /^test1 .* NONE +waiting$/m);
    assert.match(table.stdout, /^test2 .* clean-traffic +waiting$/m);
    assert.match(table.stdout, /^custom .* mine \(NOT TRUSTED\) +waiting$/m);
    const shown = await cli(['instances', 'show', 'test2', ...conf(t.dir)]);
    assert.match(shown.stdout, /^nwfilter:\s+clean-traffic$/m);
    assert.match(shown.stdout, /^filtered:\s+true$/m);
    const json = JSON.parse((await cli(['instances', 'show', 'test1', '--json', ...conf(t.dir)])).stdout) as Record<string, unknown>;
    assert.deepEqual([json['nwfilter'], json['filtered']], [null, false]);
  });
});

test('require_filter = warn (the default) serves every VM, logs each unfiltered one once and lists them in status', async () => {
  const dir = tempDir();
  const logfile = path.join(dir, 'mdserver.log');
  // The in-process server keeps the test's logging; this sends warnings to a file the test reads.
  configureLogging({ base: 'info', stream: 'error', file: 'info', debug: false, logfile });
  try {
    await withVms({}, [VM1, FILTERED], async (t, ip) => {
      for (let i = 0; i < 3; i++) await upload(t.port, VM1); // the hook uploads at every start
      assert.equal((await request(t.port, '/latest/user-data', { from: ip })).status, 200);
      const r = await request(t.port, '/instance-upload', { method: 'POST', body: domainXml(VM1) });
      assert.equal(r.body, `updated test1 mac=${VM1.mac} ipv4=${ip}\n`, 'no note in the reply under warn');
      await waitForLog(logfile, /instance without a trusted nwfilter/);
      const lines = fs.readFileSync(logfile, 'utf8').split('\n').filter((l) => l.includes('instance without a trusted nwfilter'));
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0] ?? '', /test1/);
      const status = await statusWarnings(t.dir);
      assert.deepEqual(status.json, [
        '1 instance(s) without a trusted nwfilter can be impersonated by a VM that copies their MAC and address (require_filter = warn): test1',
      ]);
      assert.match(status.text, /^warning:\s+1 instance\(s\) without a trusted nwfilter .*: test1$/m);
    }, dir);
  } finally {
    configureLogging({ base: 'error', stream: 'error', file: 'error', debug: false, logfile: null });
  }
});

test('require_filter = no serves unfiltered VMs without a word', async () => {
  await withVms({ mdserver: { require_filter: 'no' } }, [VM1], async (t, ip) => {
    assert.equal((await request(t.port, '/latest/user-data', { from: ip })).status, 200);
    assert.deepEqual((await statusWarnings(t.dir)).json, []);
  });
});

async function waitForLog(file: string, re: RegExp): Promise<void> {
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    if (fs.existsSync(file) && re.test(fs.readFileSync(file, 'utf8'))) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`no line matching ${String(re)} in ${file}`);
}
