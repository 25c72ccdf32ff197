// dnsmasq starts as root and runs whatever its configuration names in dhcp-script=, as root. The
// files mdserver writes (as the unprivileged mdserver account) must therefore never be read as
// dnsmasq options: here every one of them gets hostile lines and a real dnsmasq, started exactly
// as mdserver-dnsmasq.service starts it, must not act on them.

import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dnsmasqPaths, renderConf } from '../src/dnsmasq/render.js';
import { loadConfig } from '../src/config/index.js';
import { startTestServer, tempDir, upload, VM1, writeConfig } from './helpers.js';
import { cleanupNetns, Netns, skipUnlessNetns, waitFor } from './netns.js';
import { cli, MDSERVER } from './process.js';
import { privileges, readUnit, startUnit, type Started } from './unit.js';

const DNSMASQ = '/usr/sbin/dnsmasq';

/** Every regular file under `dir`. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

test('hostile lines in every file mdserver writes never become dnsmasq options', skipUnlessNetns([DNSMASQ, 'setpriv']), async () => {
  const dir = tempDir('mdserver-dnsmasq-priv-');
  // dnsmasq keeps root here: the test has no mdserver account to drop to, and a probe that runs at
  // all shows that an option got through.
  const t = await startTestServer({ dnsmasq: { user: 'root', interface: 'br-mds' } }, dir);
  const ns = Netns.create('mdsp');
  const runs: Started[] = [];
  try {
    await upload(t.port, VM1);
    // Whatever rewrite the upload scheduled happens now, not over the hostile lines added below.
    t.running.services.dnsmasq.flush();
    const base = path.join(dir, 'dnsmasq');
    const written = filesUnder(base);
    assert.ok(written.length >= 3, `mdserver wrote ${written.join(', ')}`);

    // dhcp-script= runs a program as root; with leasefile-ro dnsmasq runs it at start-up ("init").
    const ran = path.join(dir, 'probe-ran');
    const probe = path.join(dir, 'probe');
    fs.writeFileSync(probe, `#!/bin/sh\necho "$@" >> '${ran}'\n`, { mode: 0o755 });
    for (const f of written) fs.appendFileSync(f, `dhcp-script=${probe}\n`);
    // The DNS hosts directory is read whole, so the account can add a file of its own there; this
    // one would pull in another configuration (conf-file=) that names the probe.
    const evilConf = path.join(dir, 'evil.conf');
    fs.writeFileSync(evilConf, `dhcp-script=${probe}\n`);
    fs.writeFileSync(path.join(base, 'dns', 'extra'), `conf-file=${evilConf}\n`);

    const unit = readUnit('mdserver-dnsmasq.service');
    const paths = {
      '/etc/mdserver/mdserver.conf': path.join(dir, 'mdserver.conf'),
      '/usr/local/bin/mdserver': MDSERVER,
      '/run/mdserver-dnsmasq': path.join(dir, 'run-dnsmasq'),
      '/var/lib/mdserver/dnsmasq': base,
      '/run/mdserver': path.join(dir, 'run'),
    };
    const first = startUnit(ns, unit, paths, ['--log-facility=-']);
    runs.push(first);
    const pidFile = dnsmasqPaths(loadConfig(path.join(dir, 'mdserver.conf')).config).pidFile;
    await waitFor('dnsmasq to read the data files', () => ['mds.dhcp-hosts', 'mds.opts', 'mds.dns-hosts'].every((f) => new RegExp(`read \\S*${f}`).test(first.output())));
    assert.equal(first.child.exitCode, null, first.output());
    // mdserver's SIGHUP after a change makes dnsmasq read them all again.
    const reads = (): number => first.output().split('\n').filter((l) => /read \S*mds\.dhcp-hosts/.test(l)).length;
    const before = reads();
    process.kill(Number(fs.readFileSync(pidFile, 'utf8').trim()), 'SIGHUP');
    await waitFor('dnsmasq to read them again after SIGHUP', () => reads() > before);

    // Each hostile line was read, as data, and refused as data.
    const log = first.output();
    assert.match(log, /bad DHCP host name at line \d+ of \S*mds\.dhcp-hosts/);
    assert.match(log, /bad dhcp-option at line \d+ of \S*mds\.opts/);
    assert.match(log, /bad address at \S*mds\.dns-hosts line \d+/);
    assert.match(log, /bad address at \S*dns\/extra line \d+/);
    assert.equal(fs.existsSync(ran), false, `the probe ran: ${fs.existsSync(ran) ? fs.readFileSync(ran, 'utf8') : ''}`);
    assert.equal(first.child.exitCode, null, 'dnsmasq keeps running');
    first.child.kill('SIGTERM');
    await waitFor('dnsmasq to stop', () => first.child.exitCode !== null || first.child.signalCode !== null);

    // The probe itself works: the same line in the root-written configuration runs it, in the same
    // sandbox. (This is where the line went before: mdserver wrote that file.)
    const conf = path.join(dir, 'run-dnsmasq', 'dnsmasq.conf');
    fs.writeFileSync(path.join(dir, 'control.conf'), `${fs.readFileSync(conf, 'utf8')}dhcp-script=${probe}\n`);
    const control = ns.spawn('setpriv', [...privileges(unit), DNSMASQ, '--keep-in-foreground', `--conf-file=${path.join(dir, 'control.conf')}`, '--log-facility=-']);
    runs.push({ child: control, output: () => '' });
    await waitFor('the probe named in the root configuration to run', () => fs.existsSync(ran));
    assert.match(fs.readFileSync(ran, 'utf8'), /^init$/m);
  } finally {
    for (const r of runs) r.child.kill('SIGKILL');
    cleanupNetns();
    await t.close();
  }
});

test('mdserver-dnsmasq.service starts dnsmasq from a file only root writes, with no CAP_DAC_OVERRIDE and no new privileges', () => {
  const unit = readUnit('mdserver-dnsmasq.service');
  const server = readUnit('mdserver.service');
  assert.equal(unit.value('NoNewPrivileges'), 'yes');
  const caps = (unit.value('CapabilityBoundingSet') ?? '').split(/\s+/);
  assert.ok(caps.length > 0 && !caps.includes('CAP_DAC_OVERRIDE') && !caps.includes('CAP_DAC_READ_SEARCH') && !caps.includes('CAP_SYS_ADMIN'), caps.join(' '));
  assert.equal(unit.value('User'), undefined, 'dnsmasq starts as root and drops to [dnsmasq] user itself');

  const start = unit.value('ExecStart') ?? '';
  const conf = /--conf-file=(\S+)/.exec(start)?.[1];
  assert.ok(conf, start);
  // In this unit's own runtime directory, which systemd makes for root...
  assert.deepEqual(unit.values('RuntimeDirectory'), ['mdserver-dnsmasq']);
  assert.equal(path.dirname(conf), '/run/mdserver-dnsmasq');
  // ...never below a directory the mdserver account owns.
  const mdserverDirs = [
    ...server.values('StateDirectory').map((d) => `/var/lib/${d}`),
    ...server.values('RuntimeDirectory').map((d) => `/run/${d}`),
    ...server.values('LogsDirectory').map((d) => `/var/log/${d}`),
    '/var/lib/mdserver', '/etc/mdserver',
  ];
  for (const d of mdserverDirs) assert.ok(!conf.startsWith(`${d}/`), `${conf} is below ${d}`);
  // Written by root ("+") before each start, then checked by dnsmasq itself.
  const pre = unit.values('ExecStartPre');
  assert.match(pre[0] ?? '', new RegExp(`^\\+/usr/local/bin/mdserver dnsmasq-conf --config /etc/mdserver/mdserver.conf --output ${conf}$`));
  assert.equal(pre[1], `/usr/sbin/dnsmasq --test --conf-file=${conf}`);
  assert.doesNotMatch(fs.readFileSync(unit.file, 'utf8'), /^[^#]*(dhcp-script|dhcp-luascript|dhcp-scriptuser|ReadWritePaths)/m);
});

test('mdserver dnsmasq-conf prints the configuration, and writes it only into a directory no other account can write', async () => {
  const dir = tempDir();
  try {
    const config = writeConfig(dir);
    const printed = await cli(['dnsmasq-conf', '--config', config]);
    assert.equal(printed.status, 0, printed.stderr);
    assert.equal(printed.stdout, renderConf(loadConfig(config).config));
    assert.doesNotMatch(printed.stdout, /^(dhcp-script|dhcp-luascript|dhcp-scriptuser|conf-file|conf-dir)=/m);

    const own = path.join(dir, 'own');
    fs.mkdirSync(own, { mode: 0o755 });
    fs.chmodSync(own, 0o755);
    const wrote = await cli(['dnsmasq-conf', '--config', config, '--output', path.join(own, 'dnsmasq.conf')]);
    assert.equal(wrote.status, 0, wrote.stderr);
    assert.equal(fs.readFileSync(path.join(own, 'dnsmasq.conf'), 'utf8'), printed.stdout);
    assert.equal(fs.statSync(path.join(own, 'dnsmasq.conf')).mode & 0o777, 0o644);
    assert.deepEqual(fs.readdirSync(own), ['dnsmasq.conf'], 'no temporary file is left');

    const shared = path.join(dir, 'shared');
    fs.mkdirSync(shared);
    fs.chmodSync(shared, 0o1777);
    const refused = await cli(['dnsmasq-conf', '--config', config, '--output', path.join(shared, 'dnsmasq.conf')]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /refusing to write dnsmasq's configuration into .*shared: another account can write to that directory/);
    assert.deepEqual(fs.readdirSync(shared), []);

    const usage = await cli(['dnsmasq-conf', 'extra']);
    assert.equal(usage.status, 2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
