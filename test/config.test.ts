// Configuration: md_server's files load unchanged; bad values stop start-up naming file,
// section, key and value; includes follow md_server's order.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { INSTANCES_USAGE } from '../src/cli/instances.js';
import { ConfigError, loadConfig } from '../src/config/index.js';
import { STYLES } from '../src/libvirt/sysinfo.js';
import { tempDir } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'mdserver');

function write(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

function problems(text: string): string {
  const dir = tempDir();
  const file = write(dir, 'mdserver.conf', text);
  try {
    loadConfig(file);
    return '';
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.message;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('loading', () => {
  test("md_server's defaults apply to an empty file", () => {
    const dir = tempDir();
    const { config } = loadConfig(write(dir, 'mdserver.conf', '# nothing\n'));
    assert.equal(config.mdserver.port, 80);
    assert.equal(config.mdserver.listenAddress, '169.254.169.254');
    assert.equal(config.mdserver.userdataDir, '/etc/mdserver/userdata');
    assert.deepEqual(config.mdserver.userdataSuffixes, ['', '.yaml']);
    assert.equal(config.mdserver.dbFile, '/var/lib/mdserver/db_file.json');
    assert.equal(config.dnsmasq.netAddress, '10.122.0.0');
    assert.equal(config.dnsmasq.netPrefix, 16);
    assert.equal(config.dnsmasq.gateway, '10.122.0.1');
    assert.equal(config.dnsmasq.leaseLen, 86400);
    assert.equal(config.dnsmasq.prefix, null);
    assert.deepEqual(config.dnsmasq.entryOrder, ['base']);
    assert.equal(config.loglevels.file, 'debug');
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.mdserver));
  });

  test('booleans accept yes/no/true/false/on/off/1/0 in any case', () => {
    for (const [word, value] of [['yes', true], ['No', false], ['TRUE', true], ['false', false], ['on', true], ['off', false], ['1', true], ['0', false]] as const) {
      const dir = tempDir();
      const { config } = loadConfig(write(dir, 'm.conf', `[dnsmasq]\nuse_dns = ${word}\n`));
      assert.equal(config.dnsmasq.useDns, value, word);
    }
  });

  test('public keys keep file order, and values keep ; and # as ConfigParser does', () => {
    const dir = tempDir();
    const { config } = loadConfig(write(dir, 'm.conf', '[public-keys]\nzeta = ssh-rsa Z z#1\nalpha = ssh-ed25519 A a;b\n[template-data]\ncolour = #fff\n'));
    assert.deepEqual(config.publicKeys.map((k) => k.name), ['zeta', 'alpha']);
    assert.equal(config.publicKeys[0]?.key, 'ssh-rsa Z z#1');
    assert.equal(config.publicKeys[1]?.key, 'ssh-ed25519 A a;b');
    assert.equal(config.templateData['colour'], '#fff');
  });

  test('the old [mdserver] loglevel still works and sets [loglevels] base', () => {
    const dir = tempDir();
    const { config, warnings } = loadConfig(write(dir, 'm.conf', '[mdserver]\nloglevel = WARNING\n[loglevels]\nbase = debug\n'));
    assert.equal(config.loglevels.base, 'warn');
    assert.ok(warnings.some((w) => w.includes('loglevel is deprecated')));
  });

  test('includes: directories (lexical *.conf) then files, last one wins, [_include_] only from the main file', () => {
    const dir = tempDir();
    write(dir, 'conf.d/20-b.conf', '[dnsmasq]\nlease_len = 2000\n[service]\nname = from-b\n');
    write(dir, 'conf.d/10-a.conf', '[dnsmasq]\nlease_len = 1000\n[_include_]\nfiles = never.conf\n');
    write(dir, 'conf.d/.hidden.conf', '[service]\nname = hidden\n');
    write(dir, 'conf.d/notes.txt', '[service]\nname = txt\n');
    write(dir, 'never.conf', '[service]\ntype = never\n');
    write(dir, 'local.conf', '[dnsmasq]\nlease_len = 3000\n');
    const main = write(dir, 'mdserver.conf', `[_include_]\ndirectories = ${dir}/conf.d:${dir}/missing.d\nfiles = ${dir}/local.conf:${dir}/absent.conf\n`);
    const { config } = loadConfig(main);
    assert.equal(config.dnsmasq.leaseLen, 3000);
    assert.equal(config.service.name, 'from-b');
    assert.equal(config.service.type, 'mdserver');
    assert.deepEqual(config.files.map((f) => path.basename(f)), ['mdserver.conf', '10-a.conf', '20-b.conf', 'local.conf']);
  });

  test('_config_items_ copies section.key values into the template data; quotes are removed', () => {
    const dir = tempDir();
    const { config } = loadConfig(write(dir, 'm.conf', "[dnsmasq]\ndomain = vm.example\n[template-data]\n_config_items_ = 'dnsmasq.domain,dnsmasq.gateway'\n"));
    assert.equal(config.templateData['domain'], 'vm.example');
    assert.equal(config.templateData['gateway'], '10.122.0.1');
  });
});

describe('bad values stop start-up with file, section, key and value', () => {
  test('a port that is not a number', () => {
    assert.match(problems('[mdserver]\nport = eighty\n'), /mdserver\.conf: \[mdserver\] port = "eighty": expected a whole number/);
  });

  test('a prefix of 33', () => {
    assert.match(problems('[dnsmasq]\nnet_prefix = 33\n'), /\[dnsmasq\] net_prefix = "33": expected a whole number from 8 to 30/);
  });

  test('a gateway outside the network', () => {
    assert.match(problems('[dnsmasq]\ngateway = 192.168.1.1\n'), /\[dnsmasq\] gateway = "192\.168\.1\.1": must be a host address inside 10\.122\.0\.0\/16/);
  });

  test('every problem is listed at once', () => {
    const msg = problems('[mdserver]\nport = -1\ndebug = maybe\nlisten_address = nowhere\n[dnsmasq]\nentry_order = base,bogus\n[loglevels]\nbase = loud\n');
    for (const key of ['port', 'debug', 'listen_address', 'entry_order', 'base']) assert.match(msg, new RegExp(`\\] ${key} = `), key);
  });

  test('an include that exists but cannot be read names the file', () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'conf.d'), { recursive: true });
    fs.symlinkSync(path.join(dir, 'gone.conf'), path.join(dir, 'conf.d', 'dangling.conf'));
    fs.mkdirSync(path.join(dir, 'adir.conf'));
    const main = write(dir, 'mdserver.conf', `[_include_]\ndirectories = ${dir}/conf.d\nfiles = ${dir}/adir.conf\n`);
    assert.throws(() => loadConfig(main), (e: Error) =>
      /dangling\.conf: cannot read included file/.test(e.message) && /adir\.conf: cannot read included file/.test(e.message));
  });

  test('a missing main file is an error, not silent defaults', () => {
    assert.throws(() => loadConfig('/nonexistent/mdserver.conf'), /\/nonexistent\/mdserver\.conf: cannot read config file/);
  });
});

describe('mdserver --check-config', () => {
  test('prints the resolved configuration with secrets hidden and exits 0', () => {
    const dir = tempDir();
    const file = write(dir, 'm.conf', '[mdserver]\npassword = $6$topsecret\n[public-keys]\nme = ssh-rsa AAAAkey\n[template-data]\ntoken = t0ken\n');
    const r = spawnSync(BIN, ['--check-config', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^mdserver\.port=80$/m);
    assert.match(r.stdout, /^mdserver\.password=<hidden>$/m);
    for (const s of ['topsecret', 'AAAAkey', 't0ken']) assert.ok(!r.stdout.includes(s));
  });

  test('lists every problem and exits non-zero', () => {
    const dir = tempDir();
    const file = write(dir, 'm.conf', '[mdserver]\nport = eighty\n[dnsmasq]\nnet_prefix = 33\n');
    const r = spawnSync(BIN, ['--check-config', file], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /port = "eighty"/);
    assert.match(r.stderr, /net_prefix = "33"/);
  });

  test('the server refuses to start on a bad value and says why', () => {
    const dir = tempDir();
    const file = write(dir, 'm.conf', '[mdserver]\nport = eighty\n');
    const r = spawnSync(BIN, [file], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /m\.conf: \[mdserver\] port = "eighty"/);
  });

  test('--version and --help answer', () => {
    assert.match(spawnSync(BIN, ['--version'], { encoding: 'utf8' }).stdout, /^mdserver \d+\.\d+\.\d+\n$/);
    assert.match(spawnSync(BIN, ['--help'], { encoding: 'utf8' }).stdout, /--check-config/);
  });

  test('--help names every sysinfo style and every instances subcommand', () => {
    const help = spawnSync(BIN, ['--help'], { encoding: 'utf8' }).stdout;
    for (const style of STYLES) assert.match(help, new RegExp(`sysinfo --style [a-z0-9|]*\\b${style}\\b`), style);
    assert.match(help, /sysinfo .*--filter/);
    for (const [, sub] of INSTANCES_USAGE.matchAll(/mdserver instances (\w+)/g)) assert.match(help, new RegExp(`instances .*\\b${sub}\\b`), `instances ${sub}`);
  });
});
