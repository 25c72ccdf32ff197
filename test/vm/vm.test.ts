// Real VMs: a Debian guest started by libvirt boots, its own cloud-init finds mdserver from the
// SMBIOS data `mdserver sysinfo --apply` wrote, and the guest ends up configured. One boot per
// style and Debian release (cloud-init 22.4 and 25.1), then a second boot of the same domain.
//
// Everything is checked from the host, over SSH with the key mdserver served: the serial console
// only tells when cloud-init has finished, and is printed when something fails.
//
// Runs with `npm run test:vm` (not in `npm test`: it needs the images and takes minutes).
// MDSERVER_VM_SUITES=bookworm limits it to one release.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BOOT_TIMEOUT_MS, DATASOURCE, Guest, type Style } from './guest.js';
import { MDS, VmHost } from './host.js';
import { ensureImage, selectedSuites, type Image, type Suite } from './image.js';
import { explained, re, registered, RUNCMD_LOG, selectedStyles, TEMPLATE, vmsUnavailable, type Registered } from './checks.js';

const STYLES = selectedStyles();
/**
 * Which styles boot a second time. A boot costs minutes of emulated CPU, so by default only the
 * EC2 style, the one whose instance id and platform check depend most on what mdserver keeps
 * (MDSERVER_VM_SECOND_BOOT=all boots every style twice).
 */
const SECOND_BOOT: Style[] = process.env['MDSERVER_VM_SECOND_BOOT'] === 'all' ? STYLES : ['ec2'];
const unavailable = vmsUnavailable();

interface Timing {
  suite: Suite;
  style: Style;
  boot: number;
  seconds: number;
  /** qemu's CPU seconds for the boot: the guest's own work, whatever else loads the machine. */
  cpu: number;
}
const timings: Timing[] = [];

function checkConfigured(host: VmHost, guest: Guest, style: Style, reg: Registered): string {
  const ip = reg.ipv4;
  const f = guest.facts(ip, {
    result: 'cat /run/cloud-init/result.json',
    // Exit status 2 (cloud-init 23.4 and later) is "done" with recoverable errors: warnings and
    // deprecations, e.g. the nocloud-net name that seeds older cloud-init; result.json's errors
    // tell real failures.
    status: 'cloud-init status --long; echo "exit=$?"',
    hostname: 'hostname',
    keys: 'cat ~/.ssh/authorized_keys',
    runcmd: `cat ${RUNCMD_LOG}`,
    addrs: 'ip -4 -o addr show',
    addrs6: 'ip -6 -o addr show scope global',
    links: 'ip -o link show',
    route: 'ip -4 route show default',
    mds: `curl -sS --max-time 10 http://${MDS}/service/name`,
    // mdserver found by name, over each protocol: dnsmasq's A and AAAA records for the service
    // names, and the listener on fd00:ec2::254.
    byName4: 'curl -4 -sS --max-time 10 http://metadata/service/name',
    byName6: 'curl -6 -sS --max-time 10 http://metadata/service/name',
    name: `getent hosts ${guest.name}`,
    instance: 'cat /var/lib/cloud/data/instance-id',
  });

  // cloud-init chose this style's datasource and reported no error.
  const result = JSON.parse(f['result'] as string) as { v1: { datasource: string; errors: string[] } };
  assert.match(result.v1.datasource, DATASOURCE[style], `datasource: ${result.v1.datasource}`);
  assert.deepEqual(result.v1.errors, []);
  assert.match(f['status'] as string, /^status: done$/m);
  assert.match(f['status'] as string, /^exit=[02]$/m, f['status']);

  // The host name is the domain's, the key mdserver served is authorized, runcmd ran.
  assert.equal(f['hostname'], guest.name);
  assert.ok((f['keys'] as string).split('\n').includes(host.sshPublicKey), f['keys']);
  assert.match(f['runcmd'] as string, new RegExp(`^${guest.name} [0-9a-f-]+$`, 'm'));

  // The fixed address came by DHCP: a dynamic address on the NIC with the domain's MAC, and
  // dnsmasq acknowledged it.
  assert.match(f['addrs'] as string, new RegExp(`inet ${re(ip)}/${host.network.prefix} .*dynamic`), f['addrs']);
  assert.ok((f['links'] as string).includes(`link/ether ${reg.mac}`), f['links']);
  assert.ok(host.readFile(host.dnsmasqLogFile).includes(`DHCPACK(br-mds) ${ip} ${reg.mac}`));

  // A working network with mdserver's defaults: a default route, mdserver reachable, its own
  // name resolving.
  assert.match(f['route'] as string, new RegExp(`^default via ${re(host.network.gateway)} `));
  assert.equal(f['mds'], 'mdserver');
  assert.equal(f['byName4'], 'mdserver');

  // Dual-stack: the guest also got its fixed IPv6 address (derived from its IPv4 one) by DHCPv6,
  // and reaches mdserver by name over IPv6, wherever cloud-init asks for DHCPv6: with the network
  // configuration mdserver serves (EC2, OpenStack: read in cloud-init's local stage), or with
  // cloud-init's own fallback configuration, which asks for DHCPv6 too from cloud-init 24 on
  // (Debian 13). NoCloud's network seed and CloudStack are read after the network is up, so
  // Debian 12's cloud-init configures them with its IPv4-only fallback. A dual-stack CloudStack
  // guest is the case that needs data-server to resolve to the IPv4 address only.
  const dualStack = style === 'ec2' || style === 'openstack' ||
    ((style === 'nocloud' || style === 'cloudstack') && guest.spec.image.suite !== 'bookworm');
  if (dualStack) {
    assert.match(f['addrs6'] as string, new RegExp(`inet6 ${re(reg.ipv6)}/\\d+ `), f['addrs6']);
    assert.equal(f['byName6'], 'mdserver');
  }
  assert.match(f['name'] as string, new RegExp(`\\s${guest.name}(\\s|$)`));

  return f['instance'] as string;
}

async function runStyle(t: TestContext, host: VmHost, image: Image, style: Style): Promise<void> {
  const name = `${style}-${image.suite}`;
  const guest = new Guest(host, { name, image });
  // Each subtest prints the logs when it fails (a failed subtest does not throw here), and the
  // guest is destroyed however this ends, before the next style boots.
  try {
    let reg: Registered | null = null;
    await explained(host, `${name}: boot`, async () => {
      if (style === 'ec2') await host.reconfigure({ mdserver: { imds_tokens: 'required' } });
      // A CloudStack guest finds its server by the name data-server, its DHCP server or its
      // gateway: mdserver answers on the gateway too, and on port 8080 for passwords.
      else if (style === 'cloudstack') await host.restartWith({ cloudstack: { enabled: 'yes' } });
      else await host.reconfigure({});
      await guest.define(style);
      const started = guest.start();
      reg = await registered(host, name);
      assert.match(reg.ipv4, /^10\.198\.0\.\d+$/);
      if (style === 'cloudstack') {
        // Set while the guest boots, as an operator would: its cloud-init fetches it from port 8080.
        const pw = await host.mdserver(['instances', 'password', name], undefined, 'Vm-Test-Pass-1\n');
        assert.equal(pw.status, 0, pw.stderr);
      }
      // As an operator's script would: the guest's own cloud-init reports to mdserver, and
      // `mdserver instances wait` returns when it has finished (0: every stage succeeded).
      const waited = await host.mdserver(['instances', 'wait', name, '--timeout', String(BOOT_TIMEOUT_MS / 1000)], BOOT_TIMEOUT_MS + 30000);
      assert.equal(waited.status, 0, `mdserver instances wait ${name}: ${waited.stdout}${waited.stderr}`);
      const finished = Date.now();
      assert.match(guest.serial(), /Cloud-init v\. \S+ finished at/);
      timings.push({ suite: image.suite, style, boot: 1, seconds: (finished - started) / 1000, cpu: guest.cpuSeconds() });
      await guest.waitSsh(reg.ipv4);
    });
    const first = reg as Registered | null;
    if (!first) throw new Error('unreachable');

    let instanceId = '';
    let firstOk = false;
    await t.test('first boot: configured by its own cloud-init from mdserver', () =>
      explained(host, `${name}: first boot checks`, async () => {
        instanceId = checkConfigured(host, guest, style, first);
        if (style === 'cloudstack') {
          // The guest fetched the password, acknowledged it (mdserver deleted it), and cloud-init
          // set it on the default user.
          const shown = JSON.parse((await host.mdserver(['instances', 'show', name, '--json'])).stdout) as { password: string | null };
          assert.equal(shown.password, null, 'the password was acknowledged');
          assert.match(guest.sh(first.ipv4, 'sudo passwd -S debian'), /^debian P /);
        }
        if (style === 'ec2') {
          // cloud-init on an "aws" platform used IMDSv2: with tokens required nothing else works,
          // and mdserver saw the token requests from this guest.
          assert.match(host.readFile(host.mdserverLogFile), new RegExp(`${re(first.ipv4)} PUT /latest/api/token 200`));
        }
        firstOk = true;
        await Promise.resolve();
      }),
    );

    const skipSecond = !SECOND_BOOT.includes(style) ? 'one style boots twice (MDSERVER_VM_SECOND_BOOT=all for every style)' : !firstOk ? 'the first boot failed' : false;
    await t.test('second boot: same instance, same address, first-boot modules not run again', { skip: skipSecond }, () =>
      explained(host, `${name}: second boot`, async () => {
        const offset = guest.serial().length;
        await guest.shutdown(first.ipv4);
        const again = guest.start();
        const reg2 = await registered(host, name);
        assert.equal(reg2.ipv4, first.ipv4);
        const finished2 = await guest.waitFinished(offset);
        timings.push({ suite: image.suite, style, boot: 2, seconds: (finished2 - again) / 1000, cpu: guest.cpuSeconds() });
        await guest.waitSsh(first.ipv4);
        assert.equal(checkConfigured(host, guest, style, first), instanceId);
        const runs = guest.sh(first.ipv4, `cat ${RUNCMD_LOG}`).trim().split('\n');
        assert.equal(runs.length, 1, `runcmd ran ${runs.length} times: ${runs.join(' | ')}`);
        assert.notEqual(guest.sh(first.ipv4, 'cat /proc/sys/kernel/random/boot_id').trim(), runs[0]?.split(' ')[1], 'this is a new boot');
      }),
    );
  } finally {
    guest.destroy();
  }
}

async function runSuite(t: TestContext, image: Image): Promise<void> {
  const suite = image.suite;
  t.diagnostic(`${suite}: cloud-init ${image.versions['cloud-init']}, image ${image.buildSeconds ? `built in ${image.buildSeconds} s` : 'from the cache'}`);
  const host = await VmHost.start({ shareDirs: [image.dir] });
  try {
    for (const style of STYLES) {
      // A guest of each style gets its user-data from the template named after it.
      fs.writeFileSync(path.join(host.dir, 'userdata', `${style}-${suite}.yaml`), TEMPLATE);
      await t.test(style, (st) => runStyle(st, host, image, style));
    }
  } finally {
    for (const x of timings.filter((x) => x.suite === suite)) t.diagnostic(`${x.suite} ${x.style} boot ${x.boot}: virsh start to cloud-init finished ${x.seconds.toFixed(1)} s (qemu CPU ${x.cpu.toFixed(1)} s)`);
    await host.stop();
  }
}

// The releases boot side by side, each on a libvirt host of its own (its own namespace, bridge,
// mdserver and dnsmasq): a guest under TCG keeps one core busy for most of its boot, so two
// guests on two cores take about the time of one. Within a release the styles take turns, since
// each reconfigures that host's mdserver.
test('Debian guests under libvirt end configured by mdserver in every style', { skip: unavailable ?? false, concurrency: 2 }, async (t) => {
  // Built (or found) first, one after the other: a build blocks this process for minutes.
  const images = selectedSuites().map((suite) => ensureImage(suite));
  await Promise.all(images.map((image) => t.test(`a Debian ${image.suite} guest in every style`, (st) => runSuite(st, image))));
});
