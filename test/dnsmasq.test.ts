// The four dnsmasq files, compared with golden copies, how they are written and signalled, and
// that no value can add a line (an option) to any of them.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/index.js';
import { DnsmasqFiles } from '../src/dnsmasq/files.js';
import { checkHosts, dnsmasqPaths, renderConf, renderDhcpHosts, renderDnsHosts, renderOpts, type HostEntry } from '../src/dnsmasq/render.js';
import { silenceLogging } from '../src/log.js';
import { iniText, tempDir } from './helpers.js';

silenceLogging();
const GOLDEN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'golden');

function configFor(sections: Record<string, Record<string, string>>) {
  const dir = tempDir();
  const file = path.join(dir, 'mdserver.conf');
  fs.writeFileSync(file, iniText(sections));
  return loadConfig(file).config;
}

const HOSTS: HostEntry[] = [
  { hostName: 'web1', mac: '52:54:00:3a:cf:41', ipv4: '10.122.4.17', ipv6: null },
  { hostName: 'db-1', mac: '52:54:00:11:22:33', ipv4: '10.122.200.3', ipv6: 'fd00:122::3' },
];

/** Compares with test/golden/<name>; UPDATE_GOLDEN=1 rewrites the golden copy instead. */
function golden(name: string, actual: string): void {
  const file = path.join(GOLDEN, name);
  if (process.env['UPDATE_GOLDEN'] === '1') fs.writeFileSync(file, actual);
  assert.equal(actual, fs.readFileSync(file, 'utf8'), `differs from test/golden/${name}`);
}

describe('dnsmasq files', () => {
  const cfg = configFor({
    mdserver: { listen_address: '169.254.169.254' },
    dnsmasq: {
      base_dir: '/var/lib/mdserver/dnsmasq',
      run_dir: '/run/mdserver',
      use_dns: 'yes',
      domain: 'vm.example',
      prefix: 'kvm-',
      entry_order: 'prefix,domain,base',
      lease_len: '43200',
    },
  });

  test('the config file matches the golden copy: lease time in dhcp-range, domain written', () => {
    golden('mds.conf', renderConf(cfg));
    assert.match(renderConf(cfg), /^dhcp-range=10\.122\.0\.0,static,255\.255\.0\.0,43200$/m);
    assert.doesNotMatch(renderConf(cfg), /dhcp-lease-max/);
  });

  test('the options file has the classless routes to 169.254.169.254, the router and the DNS server', () => {
    golden('mds.opts', renderOpts(cfg));
  });

  test('dhcp-hosts has one mac,id:*,ipv4,[ipv6],name,lease line per host', () => {
    golden('mds.dhcp-hosts', renderDhcpHosts(checkHosts(HOSTS).safe, cfg.dnsmasq.leaseLen));
  });

  test('dns-hosts names each host in entry_order with prefix and domain', () => {
    golden('mds.dns-hosts', renderDnsHosts(cfg, checkHosts(HOSTS).safe));
  });

  test("md_server's defaults: no domain, no DNS option, base names only", () => {
    const plain = configFor({ dnsmasq: {} });
    assert.doesNotMatch(renderConf(plain), /^domain=/m);
    assert.doesNotMatch(renderOpts(plain), /dns-server/);
    assert.equal(renderDnsHosts(plain, checkHosts(HOSTS).safe),
      '169.254.169.254 metadata instance-data data-server\n10.122.4.17 web1\n10.122.200.3 db-1\nfd00:122::3 db-1\n');
  });

  test('data-server (CloudStack\'s name) names the metadata address, and no VM can take that name', () => {
    const cs = configFor({ dnsmasq: {}, cloudstack: { enabled: 'yes' } });
    const rogue: HostEntry = { hostName: 'Data-Server', mac: '52:54:00:00:00:99', ipv4: '10.122.9.9', ipv6: null };
    assert.equal(renderDnsHosts(cs, checkHosts([rogue, ...HOSTS]).safe), '169.254.169.254 metadata instance-data data-server\n10.122.4.17 web1\n10.122.200.3 db-1\nfd00:122::3 db-1\n');
  });

  test('a configured path with a newline, "#" or "," stays one quoted value: it cannot start an option', () => {
    // ini values in double quotes are JSON strings, so a configuration can hold a newline.
    const dir = tempDir();
    try {
      fs.writeFileSync(path.join(dir, 'mdserver.conf'), '[dnsmasq]\nbase_dir = "/srv/mds\\ndhcp-script=/tmp/evil"\nrun_dir = "/run/md #x,y"\n');
      const hostile = loadConfig(path.join(dir, 'mdserver.conf')).config;
      const conf = renderConf(hostile);
      const options = conf.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.slice(0, l.indexOf('=') < 0 ? undefined : l.indexOf('=')));
      assert.deepEqual(options, ['user', 'leasefile-ro', 'strict-order', 'expand-hosts', 'pid-file', 'except-interface', 'interface', 'bind-dynamic',
        'dhcp-range', 'dhcp-no-override', 'dhcp-authoritative', 'dhcp-hostsfile', 'dhcp-optsfile', 'hostsdir']);
      assert.match(conf, /^dhcp-hostsfile="\/srv\/mds\\ndhcp-script=\/tmp\/evil\/dhcp\/mds\.dhcp-hosts"$/m);
      assert.match(conf, /^pid-file="\/run\/md #x,y-dnsmasq\/mds\.pid"$/m);
      if (spawnSync('sh', ['-c', 'command -v dnsmasq'], { stdio: 'ignore' }).status === 0) {
        // dnsmasq itself reads it as the same options, with the quoted values as they are.
        fs.writeFileSync(path.join(dir, 'dnsmasq.conf'), conf);
        const check = spawnSync('dnsmasq', ['--test', `--conf-file=${path.join(dir, 'dnsmasq.conf')}`], { encoding: 'utf8' });
        assert.equal(check.status, 0, check.stderr);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('host records whose MAC, name or address could add a line or a field are left out of both host files', () => {
    const hostile: HostEntry[] = [
      { hostName: 'ok', mac: '52:54:00:00:00:01\ndhcp-script=/tmp/evil', ipv4: '10.122.0.9', ipv6: null },
      { hostName: 'ok\n10.122.0.8 victim', mac: '52:54:00:00:00:02', ipv4: '10.122.0.8', ipv6: null },
      { hostName: 'ok', mac: '52:54:00:00:00:03', ipv4: '10.122.0.7,set:evil', ipv6: null },
      { hostName: 'ok', mac: '52:54:00:00:00:04', ipv4: null, ipv6: 'fd00::1]\nconf-file=/tmp/evil' },
    ];
    assert.equal(renderDhcpHosts(checkHosts([...hostile, ...HOSTS]).safe, 600), renderDhcpHosts(checkHosts(HOSTS).safe, 600));
    assert.equal(renderDnsHosts(cfg, checkHosts([...hostile, ...HOSTS]).safe), renderDnsHosts(cfg, checkHosts(HOSTS).safe));
  });
});

describe('writing and signalling', () => {
  test('files are replaced atomically and dnsmasq named by the pid file gets SIGHUP', async () => {
    const dir = tempDir();
    const cfg = configFor({ dnsmasq: { base_dir: path.join(dir, 'base'), run_dir: path.join(dir, 'run') } });
    // dnsmasq's pid file is in its own directory beside run_dir, which systemd creates for it.
    fs.mkdirSync(path.join(dir, 'run-dnsmasq'));
    // A real process standing in for dnsmasq: it says when it is ready for SIGHUP (a busy machine
    // may take a while to start it), and reports the SIGHUP it receives.
    const child = spawn(process.execPath, ['-e', "process.on('SIGHUP', () => { console.log('HUP'); process.exit(0) }); console.log('ready'); setInterval(() => {}, 1000)"]);
    let timer: NodeJS.Timeout | undefined;
    let output = '';
    const waiters: (() => void)[] = [];
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      for (const w of waiters) w();
    });
    child.once('exit', () => {
      for (const w of waiters) w();
    });
    /** Resolves with `line` once the stand-in printed it, or with why it never will. */
    const seen = (line: string): Promise<string> => new Promise((resolve) => {
      const check = (): void => {
        if (output.split('\n').includes(line)) resolve(line);
        else if (child.exitCode !== null || child.signalCode !== null) resolve(`exited before ${line}`);
      };
      waiters.push(check);
      clearTimeout(timer);
      timer = setTimeout(() => resolve(`no ${line} within 20 s`), 20000);
      check();
    });
    try {
      assert.equal(await seen('ready'), 'ready');
      fs.writeFileSync(dnsmasqPaths(cfg).pidFile, `${child.pid}\n`);
      const got = seen('HUP');
      const files = new DnsmasqFiles(() => cfg, () => HOSTS);
      assert.equal(files.writeAll(), true);
      assert.equal(await got, 'HUP');
      assert.equal(fs.readFileSync(path.join(dir, 'base', 'dhcp', 'mds.dhcp-hosts'), 'utf8'), renderDhcpHosts(checkHosts(HOSTS).safe, 86400));
      assert.deepEqual(fs.readdirSync(path.join(dir, 'base', 'dns')), ['mds.dns-hosts'], 'no temporary files are left');
    } finally {
      clearTimeout(timer);
      child.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('mdserver writes only data files, never a dnsmasq configuration, and removes the one an earlier version wrote', () => {
    const dir = tempDir();
    try {
      const cfg = configFor({ dnsmasq: { base_dir: path.join(dir, 'base'), run_dir: path.join(dir, 'run') } });
      fs.mkdirSync(path.join(dir, 'base'));
      // What mdserver (and md_server) wrote before: a root-started dnsmasq read it as options.
      fs.writeFileSync(path.join(dir, 'base', 'mds.conf'), '## WARNING: THIS IS AN AUTO-GENERATED FILE. MANUAL CHANGES WILL BE OVERWRITTEN.\nuser=mdserver\n');
      fs.writeFileSync(path.join(dir, 'base', 'notes.conf'), 'an administrator\'s own file\n');
      const files = new DnsmasqFiles(() => cfg, () => HOSTS);
      assert.equal(files.writeAll(), true);
      const written: string[] = [];
      const walk = (d: string): void => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          if (e.isDirectory()) walk(path.join(d, e.name));
          else written.push(path.relative(path.join(dir, 'base'), path.join(d, e.name)));
        }
      };
      walk(path.join(dir, 'base'));
      assert.deepEqual(written.sort(), ['dhcp/mds.dhcp-hosts', 'dns/mds.dns-hosts', 'mds.opts', 'notes.conf']);
      // dnsmasq's directory is root's, made by systemd: mdserver neither creates nor writes it.
      assert.equal(fs.existsSync(path.join(dir, 'run-dnsmasq')), false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing or stale pid file is reported in the status, never thrown', () => {
    const dir = tempDir();
    const cfg = configFor({ dnsmasq: { base_dir: path.join(dir, 'base'), run_dir: path.join(dir, 'run') } });
    const files = new DnsmasqFiles(() => cfg, () => HOSTS);
    assert.equal(files.writeAll(), true);
    assert.match(files.getStatus().hupError ?? '', /ENOENT/);
    fs.mkdirSync(path.join(dir, 'run-dnsmasq'));
    fs.writeFileSync(path.join(dir, 'run-dnsmasq', 'mds.pid'), 'garbage');
    files.flush();
    assert.match(files.getStatus().hupError ?? '', /not a process id/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('an unwritable base_dir is reported and the files are written once it is writable again', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'blocker'), 'a file where a directory should be');
    const cfg = configFor({ dnsmasq: { base_dir: path.join(dir, 'blocker', 'base'), run_dir: path.join(dir, 'run') } });
    const files = new DnsmasqFiles(() => cfg, () => HOSTS, 200);
    assert.equal(files.writeAll(), false);
    assert.equal(files.getStatus().ok, false);
    fs.rmSync(path.join(dir, 'blocker'));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(files.getStatus().ok, true);
    assert.ok(fs.existsSync(path.join(dir, 'blocker', 'base', 'dhcp', 'mds.dhcp-hosts')));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("in a storm of changes (another host's uploads) the host files are rewritten once per burst, and a change still reaches them within the bound", async () => {
    const dir = tempDir();
    const cfg = configFor({ dnsmasq: { base_dir: path.join(dir, 'base'), run_dir: path.join(dir, 'run') } });
    // Thirty thousand hosts: a rewrite costs enough CPU that ten times it would be well over the bound.
    const hosts: HostEntry[] = Array.from({ length: 30_000 }, (_, i) => ({
      hostName: `vm${i}`, mac: `52:54:00:${hex(i >> 16)}:${hex(i >> 8)}:${hex(i)}`, ipv4: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, ipv6: null,
    }));
    let rewrites = 0;
    const files = new DnsmasqFiles(() => cfg, () => hosts, 5000, { rewritten: () => rewrites++ }, 300);
    try {
      assert.equal(files.writeAll(), true);
      const written = rewrites;
      for (let i = 0; i < 20; i++) {
        hosts.push({ hostName: `late${i}`, mac: `52:54:01:00:00:${hex(i)}`, ipv4: `10.200.0.${i + 1}`, ipv6: null });
        files.scheduleWrite();
      }
      const changed = Date.now();
      const file = dnsmasqPaths(cfg).dhcpHosts;
      // The write spaced after the burst runs in slices: it is over once it is counted (the DHCP
      // file is written a step before the DNS file and the count).
      while (rewrites === written || !fs.readFileSync(file, 'utf8').includes('late19')) {
        assert.ok(Date.now() - changed < 2000, 'the last change of the burst is in the file within the bound (300 ms) and one write');
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(rewrites - written, 1, 'twenty changes, one write');
    } finally {
      files.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const hex = (n: number): string => (n & 255).toString(16).padStart(2, '0');
