// The four dnsmasq files, compared with golden copies, and how they are written and signalled.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/index.js';
import { DnsmasqFiles } from '../src/dnsmasq/files.js';
import { renderConf, renderDhcpHosts, renderDnsHosts, renderOpts, type HostEntry } from '../src/dnsmasq/render.js';
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

  test('dhcp-hosts has one mac,id:*,address,name,lease line per address', () => {
    golden('mds.dhcp-hosts', renderDhcpHosts(HOSTS, cfg.dnsmasq.leaseLen));
  });

  test('dns-hosts names each host in entry_order with prefix and domain', () => {
    golden('mds.dns-hosts', renderDnsHosts(cfg, HOSTS));
  });

  test("md_server's defaults: no domain, no DNS option, base names only", () => {
    const plain = configFor({ dnsmasq: {} });
    assert.doesNotMatch(renderConf(plain), /^domain=/m);
    assert.doesNotMatch(renderOpts(plain), /dns-server/);
    assert.equal(renderDnsHosts(plain, HOSTS), '10.122.4.17 web1\n10.122.200.3 db-1\nfd00:122::3 db-1\n');
  });
});

describe('writing and signalling', () => {
  test('files are replaced atomically and dnsmasq named by the pid file gets SIGHUP', async () => {
    const dir = tempDir();
    const cfg = configFor({ dnsmasq: { base_dir: path.join(dir, 'base'), run_dir: path.join(dir, 'run') } });
    fs.mkdirSync(path.join(dir, 'run'));
    // A real process standing in for dnsmasq: it reports the SIGHUP it receives.
    const child = spawn(process.execPath, ['-e', "process.on('SIGHUP', () => { console.log('HUP'); process.exit(0) }); console.log('ready'); setInterval(() => {}, 1000)"]);
    try {
      // Signalled only once its handler is in place: a loaded machine can take a while to start node.
      const lines: string[] = [];
      let wake = (): void => {};
      child.stdout.on('data', (d: Buffer) => {
        lines.push(...d.toString().split('\n').filter(Boolean));
        wake();
      });
      const line = async (want: string): Promise<string> => {
        const deadline = Date.now() + 20000;
        while (!lines.includes(want) && Date.now() < deadline) await new Promise<void>((r) => { wake = r; setTimeout(r, 200); });
        return lines.includes(want) ? want : `no "${want}" from the child`;
      };
      assert.equal(await line('ready'), 'ready');
      fs.writeFileSync(path.join(dir, 'run', 'mds.pid'), `${child.pid}\n`);
      const got = line('HUP');
      const files = new DnsmasqFiles(() => cfg, () => HOSTS);
      assert.equal(files.writeAll(), true);
      assert.equal((await got).trim(), 'HUP');
      assert.equal(fs.readFileSync(path.join(dir, 'base', 'dhcp', 'mds.dhcp-hosts'), 'utf8'), renderDhcpHosts(HOSTS, 86400));
      assert.deepEqual(fs.readdirSync(path.join(dir, 'base', 'dns')), ['mds.dns-hosts'], 'no temporary files are left');
    } finally {
      child.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing or stale pid file is reported in the status, never thrown', () => {
    const dir = tempDir();
    const cfg = configFor({ dnsmasq: { base_dir: path.join(dir, 'base'), run_dir: path.join(dir, 'run') } });
    const files = new DnsmasqFiles(() => cfg, () => HOSTS);
    assert.equal(files.writeAll(), true);
    assert.match(files.getStatus().hupError ?? '', /ENOENT/);
    fs.mkdirSync(path.join(dir, 'run'));
    fs.writeFileSync(path.join(dir, 'run', 'mds.pid'), 'garbage');
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
});
