// An IPv6-only guest: a Debian 13 VM on a network with no IPv4 at all (no DHCPv4, no IPv4 route)
// finds mdserver by itself at http://[fd00:ec2::254], one of cloud-init's default EC2 metadata
// URLs, and ends configured by its own cloud-init.
//
// How the guest gets there, in cloud-init 25.1's own code: in the local stage DataSourceEc2Local
// asks for an ephemeral DHCPv4 lease and, when none comes (dhclient gives up after its 60 s), goes
// on with the link-local IPv6 address the kernel gave the link; the router advertisement of
// mdserver's dnsmasq makes fd00:ec2::/64 on-link, so the guest reaches [fd00:ec2::254] from its
// fe80:: address, which mdserver maps to the VM through the neighbour table. The network
// configuration it reads there (`ipv6s`) asks for DHCPv6, and dnsmasq hands the guest its fixed
// address. cloud-init 22.4 (Debian 12) stops earlier: its dhclient failure escapes as an
// exception instead of "no lease", and the link-local path is never tried (doc/testing.md).
//
// Runs with `npm run test:vm` (skipped when MDSERVER_VM_SUITES leaves out trixie or
// MDSERVER_VM_STYLES leaves out ec2).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { BOOT_TIMEOUT_MS, DATASOURCE, Guest } from './guest.js';
import { MDS6, VmHost } from './host.js';
import { ensureImage, selectedSuites } from './image.js';
import { explained, re, registered, RUNCMD_LOG, selectedStyles, TEMPLATE, vmsUnavailable, type Registered } from './checks.js';

const NAME = 'ipv6only-trixie';
const unavailable = vmsUnavailable();
const skip = unavailable ??
  (!selectedSuites().includes('trixie') ? 'MDSERVER_VM_SUITES leaves out trixie' : !selectedStyles().includes('ec2') ? 'MDSERVER_VM_STYLES leaves out ec2' : false);

/** Boots the guest; returns its record once its cloud-init reported the end and SSH answers. */
async function boot(host: VmHost, guest: Guest): Promise<{ reg: Registered; seconds: number; cpu: number }> {
  await guest.define('ec2');
  const started = guest.start();
  const found = await registered(host, NAME);
  // Its cloud-init reports to mdserver over IPv6 (report_url is listen_address6 for a guest that
  // asked from its link-local address); `instances wait` returns 0 when every stage succeeded.
  const waited = await host.mdserver(['instances', 'wait', NAME, '--timeout', String(BOOT_TIMEOUT_MS / 1000)], BOOT_TIMEOUT_MS + 30000);
  assert.equal(waited.status, 0, `mdserver instances wait: ${waited.stdout}${waited.stderr}`);
  const seconds = (Date.now() - started) / 1000;
  const cpu = guest.cpuSeconds();
  assert.match(guest.serial(), /Cloud-init v\. \S+ finished at/);
  await guest.waitSsh(found.ipv6);
  return { reg: found, seconds, cpu };
}

/** Checks the guest from the host; returns what it is worth printing but not asserting. */
function checkIpv6Only(host: VmHost, guest: Guest, reg: Registered): string {
  const f = guest.facts(reg.ipv6, {
    result: 'cat /run/cloud-init/result.json',
    status: 'cloud-init status --long; echo "exit=$?"',
    hostname: 'hostname',
    keys: 'cat ~/.ssh/authorized_keys',
    runcmd: `cat ${RUNCMD_LOG}`,
    addrs4: 'ip -4 -o addr show',
    addrs6: 'ip -6 -o addr show scope global',
    linklocal: 'ip -6 -o addr show scope link',
    route6: 'ip -6 route show default',
    byAddress: `curl -sS --max-time 10 http://[${MDS6}]/service/name`,
    byName: 'curl -sS --max-time 10 http://metadata/service/name',
  });

  // Found and configured by its own cloud-init: the EC2 datasource, no error, the domain's name,
  // the served key, the user-data's runcmd.
  const result = JSON.parse(f['result'] as string) as { v1: { datasource: string; errors: string[] } };
  assert.match(result.v1.datasource, DATASOURCE.ec2, `datasource: ${result.v1.datasource}`);
  assert.deepEqual(result.v1.errors, []);
  assert.match(f['status'] as string, /^status: done$/m);
  assert.match(f['status'] as string, /^exit=[02]$/m, f['status']);
  assert.equal(f['hostname'], NAME);
  assert.ok((f['keys'] as string).split('\n').includes(host.sshPublicKey), f['keys']);
  assert.match(f['runcmd'] as string, new RegExp(`^${NAME} [0-9a-f-]+$`, 'm'));

  // No IPv4 but loopback; its fixed IPv6 address (derived from the IPv4 one mdserver allocated),
  // handed out by dnsmasq's DHCPv6.
  const v4 = (f['addrs4'] as string).split('\n').filter((l) => l.trim() && !/^\d+:\s+lo\s/.test(l));
  assert.deepEqual(v4, [], `IPv4 addresses besides loopback:\n${f['addrs4']}`);
  assert.match(f['addrs6'] as string, new RegExp(`inet6 ${re(reg.ipv6)}/\\d+ `), f['addrs6']);
  const dnsmasqLog = host.readFile(host.dnsmasqLogFile);
  assert.match(dnsmasqLog, new RegExp(`DHCPREPLY\\(br-mds\\) ${re(reg.ipv6)} `));
  assert.doesNotMatch(dnsmasqLog, new RegExp(`DHCPACK\\(br-mds\\) \\S+ ${re(reg.mac)}`), 'no DHCPv4 lease');
  // Not asserted: the default route from the router advertisement was there in some runs and not
  // in others (the on-link prefix from the same advertisements always was). mdserver is on-link,
  // so the guest needs none to be configured; what it had is printed.
  const route = `default route: ${(f['route6'] as string).trim() || 'none'}`;
  // mdserver reachable at its address and by name (dnsmasq's AAAA record, the resolver DHCPv6 named).
  assert.equal(f['byAddress'], 'mdserver');
  assert.equal(f['byName'], 'mdserver');

  // mdserver saw this guest only over IPv6: its IMDSv2 token requests (tokens are required) came
  // from its link-local or its DHCPv6 address, and nothing came from its IPv4 address.
  const mine = [reg.ipv6, ...[...(f['linklocal'] as string).matchAll(/inet6 (fe80:[0-9a-f:]+)\//g)].map((m) => m[1] as string)];
  const access = host.readFile(host.mdserverLogFile).split('\n');
  const tokenFrom = access.filter((l) => / PUT \/latest\/api\/token 200/.test(l)).map((l) => /\]: (\S+) PUT/.exec(l)?.[1] ?? '');
  assert.ok(tokenFrom.some((a) => mine.includes(a.replace(/%.*$/, ''))), `token requests from ${tokenFrom.join(', ')}; the guest's addresses: ${mine.join(', ')}`);
  assert.ok(!access.some((l) => l.includes(`]: ${reg.ipv4} `)), `a request from ${reg.ipv4}`);
  return route;
}

/**
 * When each cloud-init stage started, in seconds since the guest's kernel started, from the
 * console: the two DHCPv4 waits show as the long gaps before `init-local` ends and before `init`.
 * Read from the log rather than over SSH, where `cloud-init analyze` costs minutes under TCG.
 */
function stageStarts(serial: string): string {
  const starts = [...serial.matchAll(/running '([\w:-]+)' at .*? Up ([\d.]+) seconds/g)].map((m) => `${m[1]} ${m[2]} s`);
  const local = /\[\s*([\d.]+)\] .*Completed socket interaction for boot stage local/.exec(serial);
  return `${starts.join(', ')}${local ? `; init-local done ${local[1]} s` : ''}`;
}

test('an IPv6-only Debian 13 guest finds mdserver at [fd00:ec2::254] and ends configured by its own cloud-init', { skip }, async (t) => {
  const image = ensureImage('trixie');
  t.diagnostic(`trixie: cloud-init ${image.versions['cloud-init']}, image ${image.buildSeconds ? `built in ${image.buildSeconds} s` : 'from the cache'}`);
  const host = await VmHost.start({
    shareDirs: [image.dir],
    ipv4: false,
    // As for the dual-stack EC2 guests: only IMDSv2, which cloud-init uses on an "aws" platform.
    sections: { mdserver: { imds_tokens: 'required' } },
    files: { [path.join('userdata', `${NAME}.yaml`)]: TEMPLATE },
  });
  const guest = new Guest(host, { name: NAME, image });
  try {
    let reg: Registered | null = null;
    await explained(host, `${NAME}: boot`, async () => {
      const b = await boot(host, guest);
      reg = b.reg;
      t.diagnostic(`${NAME}: virsh start to cloud-init finished ${b.seconds.toFixed(1)} s (qemu CPU ${b.cpu.toFixed(1)} s)`);
    });
    const booted = reg as Registered | null;
    if (!booted) throw new Error('unreachable');
    t.diagnostic(`${NAME}: cloud-init stages started (guest uptime): ${stageStarts(guest.serial())}`);
    await explained(host, `${NAME}: checks`, () => Promise.resolve(t.diagnostic(`${NAME}: ${checkIpv6Only(host, guest, booted)}`)));
  } finally {
    guest.destroy();
    await host.stop();
  }
});
