// The files shipped for the host: the installer run into a temporary PREFIX, the systemd units,
// the shell scripts' hygiene, the sample configuration and the libvirt network definition.

import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../src/config/index.js';
import { tempDir } from './helpers.js';
import { MDSERVER, ROOT, run } from './process.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const need = (cmd: string, pkg: string): { skip: string | false } => {
  if (has(cmd)) return { skip: false };
  if (process.env['CI'] === 'true') throw new Error(`${cmd} is required under CI (Debian: ${pkg})`);
  return { skip: `needs ${cmd} (${pkg})` };
};

/** Every file under `dir` with its mode and a hash of its content, for before/after comparison. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.statSync(p);
      const rel = path.relative(dir, p);
      if (e.isDirectory()) {
        out[rel + '/'] = (st.mode & 0o7777).toString(8);
        walk(p);
      } else {
        out[rel] = `${(st.mode & 0o7777).toString(8)} ${st.mtimeMs} ${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
      }
    }
  };
  walk(dir);
  return out;
}

function install(prefix: string, env: NodeJS.ProcessEnv = {}): ReturnType<typeof run> {
  return run('bash', [path.join(ROOT, 'system-integration.sh')], { env: { PREFIX: prefix, MDSERVER_BIN: MDSERVER, ...env } });
}

test('the installer puts config, user-data directory, units, hook and defaults under PREFIX', async () => {
  const prefix = tempDir('mdserver-install-');
  try {
    const r = await install(prefix, { MDSERVER_URL: 'http://169.254.169.254:8080' });
    assert.equal(r.status, 0, r.stderr);
    const f = (p: string): string => path.join(prefix, p);
    const mode = (p: string): number => fs.statSync(f(p)).mode & 0o777;
    // The sample, with the upload token it made named: HTTP uploads are locked from the start.
    const sample = fs.readFileSync(path.join(ROOT, 'mdserver.conf.sample'), 'utf8');
    assert.equal(fs.readFileSync(f('etc/mdserver/mdserver.conf'), 'utf8'),
      sample.replace(/^# upload_token_file =$/m, 'upload_token_file = /etc/mdserver/upload-token'));
    assert.notEqual(sample.match(/^# upload_token_file =$/m), null, 'the sample documents the key as the installer expects');
    assert.equal(mode('etc/mdserver/mdserver.conf'), 0o640);
    assert.match(fs.readFileSync(f('etc/mdserver/upload-token'), 'utf8'), /^[0-9a-f]{64}$/);
    // Root's hook and the service's group read it (mdserver reads it at start and reload); no one else.
    assert.equal(mode('etc/mdserver/upload-token'), 0o640);
    assert.match(r.stdout, /created\s+.*etc\/mdserver\/upload-token/);
    assert.ok(fs.statSync(f('etc/mdserver/userdata')).isDirectory());
    assert.equal(mode('etc/mdserver/userdata'), 0o750);
    assert.equal(mode('etc/mdserver/userdata/prefixes'), 0o750, 'the directory userdata_prefix templates go in exists');
    assert.ok(fs.statSync(f('etc/mdserver/mdserver.conf.d')).isDirectory());
    assert.equal(fs.readFileSync(f('etc/libvirt/hooks/qemu.d/mdserver'), 'utf8'), fs.readFileSync(path.join(ROOT, 'hooks', 'qemu'), 'utf8'));
    assert.equal(mode('etc/libvirt/hooks/qemu.d/mdserver'), 0o755);
    assert.match(fs.readFileSync(f('etc/default/mdserver'), 'utf8'), /^MDSERVER_URL=http:\/\/169\.254\.169\.254:8080$/m);
    // The hook uploads over the admin socket first: the metadata port is shared with the VMs.
    assert.match(fs.readFileSync(f('etc/default/mdserver'), 'utf8'), /^MDSERVER_SOCKET=\/run\/mdserver\/admin\.sock$/m);
    const unit = fs.readFileSync(f('etc/systemd/system/mdserver.service'), 'utf8');
    assert.match(unit, new RegExp(`^ExecStart=${MDSERVER.replace(/[.]/g, '\\.')} /etc/mdserver/mdserver.conf$`, 'm'));
    const dnsmasqUnit = fs.readFileSync(f('etc/systemd/system/mdserver-dnsmasq.service'), 'utf8');
    assert.match(dnsmasqUnit, new RegExp(`^ExecStartPre=\\+${MDSERVER.replace(/[.]/g, '\\.')} dnsmasq-conf `, 'm'));
    assert.ok(fs.statSync(f('var/lib/mdserver/dnsmasq')).isDirectory());
    // logrotate refuses a snippet that others can write; it rotates as the service user.
    assert.equal(mode('etc/logrotate.d/mdserver'), 0o644);
    assert.match(fs.readFileSync(f('etc/logrotate.d/mdserver'), 'utf8'), /^ {4}su mdserver mdserver$/m);
    // A staged install never touches the build host's users.
    assert.doesNotMatch(r.stdout, /created\s+user/);
  } finally {
    fs.rmSync(prefix, { recursive: true, force: true });
  }
});

test('running the installer again changes nothing and keeps an edited configuration', async () => {
  const prefix = tempDir('mdserver-install-');
  try {
    assert.equal((await install(prefix)).status, 0);
    const conf = path.join(prefix, 'etc/mdserver/mdserver.conf');
    const defaults = path.join(prefix, 'etc/default/mdserver');
    fs.appendFileSync(conf, '\n[public-keys]\nadmin = ssh-ed25519 AAAAedited admin@host\n');
    fs.writeFileSync(defaults, 'MDSERVER_URL=http://10.0.0.1\n');
    const before = snapshot(prefix);
    const again = await install(prefix);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(snapshot(prefix), before);
    assert.match(again.stdout, /kept\s+.*etc\/mdserver\/mdserver\.conf \(exists; not overwritten\)/);
    assert.match(again.stdout, /unchanged\s+.*etc\/systemd\/system\/mdserver\.service/);
    assert.match(fs.readFileSync(conf, 'utf8'), /AAAAedited/);
  } finally {
    fs.rmSync(prefix, { recursive: true, force: true });
  }
});

test('an existing configuration without an upload token is kept, with a warning; the token is made for the hook', async () => {
  const prefix = tempDir('mdserver-install-');
  try {
    fs.mkdirSync(path.join(prefix, 'etc/mdserver'), { recursive: true });
    const mdServerConf = '[mdserver]\nlisten_address = 169.254.169.254\n';
    fs.writeFileSync(path.join(prefix, 'etc/mdserver/mdserver.conf'), mdServerConf);
    const r = await install(prefix);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(prefix, 'etc/mdserver/mdserver.conf'), 'utf8'), mdServerConf);
    assert.match(r.stdout, /warning\s+.*mdserver\.conf sets no upload_token_file: every local user can upload domains over HTTP/);
    assert.match(fs.readFileSync(path.join(prefix, 'etc/mdserver/upload-token'), 'utf8'), /^[0-9a-f]{64}$/);
    // Once a drop-in sets it, the warning goes.
    fs.mkdirSync(path.join(prefix, 'etc/mdserver/mdserver.conf.d'), { recursive: true });
    fs.writeFileSync(path.join(prefix, 'etc/mdserver/mdserver.conf.d/token.conf'), '[mdserver]\nupload_token_file = /etc/mdserver/upload-token\n');
    const again = await install(prefix);
    assert.doesNotMatch(again.stdout, /sets no upload_token_file/);
  } finally {
    fs.rmSync(prefix, { recursive: true, force: true });
  }
});

test('the installer warns about md_server\'s path unit and drop-ins that start dnsmasq from a file of their own', async () => {
  const prefix = tempDir('mdserver-install-');
  try {
    const units = path.join(prefix, 'etc/systemd/system');
    fs.mkdirSync(path.join(units, 'mdserver-dnsmasq.service.d'), { recursive: true });
    fs.writeFileSync(path.join(units, 'mdserver-dnsmasq.path'), '[Path]\nPathExists=/var/lib/mdserver/dnsmasq/mds.conf\n');
    // What doc/setup.md once suggested for a changed net_name or base_dir.
    fs.writeFileSync(path.join(units, 'mdserver-dnsmasq.service.d', 'override.conf'),
      '[Service]\nExecStart=\nExecStart=/usr/sbin/dnsmasq --keep-in-foreground --conf-file=/srv/mds/dnsmasq/lab.conf\n');
    fs.writeFileSync(path.join(units, 'mdserver-dnsmasq.service.d', 'limits.conf'), '[Service]\nLimitNOFILE=4096\n');
    const r = await install(prefix);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /warning\s+.*mdserver-dnsmasq\.path is md_server's: remove it/);
    assert.match(r.stdout, /warning\s+.*override\.conf starts dnsmasq with a configuration file of its own/);
    assert.doesNotMatch(r.stdout, /limits\.conf/);
  } finally {
    fs.rmSync(prefix, { recursive: true, force: true });
  }
});

test('the installer warns about an old md_server hook that would upload every VM twice', async () => {
  const prefix = tempDir('mdserver-install-');
  try {
    fs.mkdirSync(path.join(prefix, 'etc/libvirt/hooks'), { recursive: true });
    fs.writeFileSync(path.join(prefix, 'etc/libvirt/hooks/qemu'), '#!/bin/bash\ncurl -s -d "@$tf" "http://169.254.169.254/instance-upload"\n');
    const r = await install(prefix);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /warning\s+.*hooks\/qemu looks like md_server's hook/);
  } finally {
    fs.rmSync(prefix, { recursive: true, force: true });
  }
});

test('systemd-analyze verify accepts the installed units', need('systemd-analyze', 'systemd'), async () => {
  const prefix = tempDir('mdserver-install-');
  try {
    assert.equal((await install(prefix)).status, 0);
    const units = ['mdserver.service', 'mdserver-dnsmasq.service'].map((u) => path.join(prefix, 'etc/systemd/system', u));
    const r = await run('systemd-analyze', ['verify', ...units]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.stderr.trim(), '');
  } finally {
    fs.rmSync(prefix, { recursive: true, force: true });
  }
});

test('the units run mdserver as its own user, ready only when it says so, with dnsmasq after it', () => {
  const unit = fs.readFileSync(path.join(ROOT, 'systemd', 'mdserver.service'), 'utf8');
  const dnsmasq = fs.readFileSync(path.join(ROOT, 'systemd', 'mdserver-dnsmasq.service'), 'utf8');
  assert.match(unit, /^Type=notify$/m);
  assert.match(unit, /^User=mdserver$/m);
  assert.match(unit, /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m);
  assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  assert.match(unit, /^Wants=mdserver-dnsmasq\.service$/m);
  assert.match(dnsmasq, /^After=mdserver\.service$/m);
  assert.match(dnsmasq, /^PartOf=mdserver\.service$/m);
  assert.match(dnsmasq, /^ExecStart=\/usr\/sbin\/dnsmasq --keep-in-foreground --conf-file=\/run\/mdserver-dnsmasq\/dnsmasq\.conf$/m);
});

test('the hook and the installer are shellcheck-clean', need('shellcheck', 'shellcheck'), async () => {
  const r = await run('shellcheck', [path.join(ROOT, 'hooks', 'qemu'), path.join(ROOT, 'system-integration.sh')]);
  assert.equal(r.status, 0, r.stdout);
});

test('the sample configuration loads and documents every setting mdserver knows', () => {
  const sample = path.join(ROOT, 'mdserver.conf.sample');
  const { config } = loadConfig(sample);
  const text = fs.readFileSync(sample, 'utf8');
  for (const id of config.values.keys()) {
    const [section, key] = id.split('.', 2) as [string, string];
    if (section === '_include_') continue;
    assert.match(text, new RegExp(`^\\[${section}\\]|^# \\[${section}\\]`, 'm'), `section ${section}`);
    assert.match(text, new RegExp(`^#? ?${key} =`, 'm'), `${id} is not documented in the sample`);
  }
});

test('mdserver --check-config accepts the installed configuration', async () => {
  const r = await run(process.execPath, [MDSERVER, '--check-config', path.join(ROOT, 'mdserver.conf.sample')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^mdserver\.listen_address=169\.254\.169\.254$/m);
});

test('the libvirt network definition passes libvirt\'s own schema and matches the default configuration', need('virsh', 'libvirt-clients'), async () => {
  const file = path.join(ROOT, 'doc', 'mds-network.xml');
  const r = await run('virsh', ['-c', 'test:///default', 'net-define', '--validate', file]);
  assert.equal(r.status, 0, r.stderr);
  const xml = fs.readFileSync(file, 'utf8').replace(/<!--[\s\S]*?-->/g, '');
  const { config } = loadConfig(path.join(ROOT, 'mdserver.conf.sample'));
  assert.match(xml, new RegExp(`<name>${config.dnsmasq.netName}</name>`));
  assert.match(xml, new RegExp(`<bridge name='${config.dnsmasq.interface}'`));
  assert.match(xml, new RegExp(`<ip address='${config.mdserver.listenAddress}' prefix='32'/>`));
  assert.match(xml, new RegExp(`<ip address='${config.dnsmasq.gateway}' prefix='${config.dnsmasq.netPrefix}'/>`));
  // libvirt must not run a DHCP server of its own on this network.
  assert.doesNotMatch(xml, /<dhcp>/);
});
