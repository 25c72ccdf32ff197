// `npm run bench:vm`: how long a real guest takes from `virsh start` to cloud-init finished when
// mdserver seeds it, against the floor of a local NoCloud seed (a `cidata` ISO attached to the
// VM, holding the same user-data and meta-data): nothing can hand cloud-init its data faster than
// a disk of its own. For each style the same Debian 12 image boots twice, once each way, and the
// ratio mdserver / local seed is printed with each boot's `cloud-init analyze blame` head and
// mdserver's summed request time. Not a test: nothing here fails a build.
//
// Options (environment): MDSERVER_VM_SUITES=bookworm (the default here), MDSERVER_VM_CACHE.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Guest, type Style } from '../test/vm/guest.js';
import { VmHost } from '../test/vm/host.js';
import { ensureImage, type Suite } from '../test/vm/image.js';
import { poll } from '../test/vm/wait.js';

const STYLES: Style[] = ['ec2', 'openstack', 'nocloud'];

const TEMPLATE = `#cloud-config
hostname: <%= it.hostname %>
fqdn: <%= it.hostname %>.localdomain
manage_etc_hosts: true
ssh_authorized_keys:
<% for (const key of Object.values(it.public_keys)) { %>  - <%= key %>
<% } %>`;

interface Boot {
  seconds: number;
  /** qemu's CPU seconds from start to cloud-init finished: the figure that load does not move. */
  cpu: number;
  blame: string;
  mdserverMs: number;
  requests: number;
}

/** Sum of mdserver's own request times for `ip` in its access log (debug lines with ms=). */
function serverTime(host: VmHost, ip: string): { ms: number; requests: number } {
  let ms = 0;
  let requests = 0;
  for (const line of host.readFile(host.mdserverLogFile).split('\n')) {
    if (!line.includes(`]: ${ip} `)) continue;
    const m = /ms=([\d.]+)/.exec(line);
    if (m) {
      ms += Number(m[1]);
      requests++;
    }
  }
  return { ms, requests };
}

async function boot(host: VmHost, guest: Guest, style: Style | null): Promise<{ boot: Boot; ip: string }> {
  await guest.define(style);
  const started = guest.start();
  let ip = '';
  // Every probe spawns a process, which takes CPU from the emulated guest: once a second.
  await poll(
    `the hook to register ${guest.name}`,
    async () => {
      const r = await host.mdserver(['instances', 'show', guest.name, '--json']);
      if (r.status === 0) ip = (JSON.parse(r.stdout) as { ipv4: string }).ipv4;
      return ip !== '';
    },
    60000,
  );
  const finished = await guest.waitFinished(0);
  const cpu = guest.cpuSeconds();
  await guest.waitSsh(ip);
  const blame = guest.sh(ip, 'cloud-init analyze blame 2>/dev/null | head -8');
  const t = serverTime(host, ip);
  return { boot: { seconds: (finished - started) / 1000, cpu, blame, mdserverMs: t.ms, requests: t.requests }, ip };
}

async function main(): Promise<void> {
  const suite = (process.env['MDSERVER_VM_SUITES'] ?? 'bookworm').split(',')[0] as Suite;
  const image = ensureImage(suite);
  const host = await VmHost.start({ shareDirs: [image.dir] });
  const rows: { style: Style; mds: Boot; local: Boot }[] = [];
  try {
    for (const style of STYLES) {
      const name = `bench-${style}`;
      fs.writeFileSync(path.join(host.dir, 'userdata', `${name}.yaml`), TEMPLATE);
      const g = new Guest(host, { name, image });
      const { boot: mds, ip } = await boot(host, g, style);
      // The local seed holds exactly what this guest got from mdserver.
      const seed = path.join(host.dir, `${name}-seed`);
      fs.mkdirSync(seed);
      const f = g.facts(ip, { ud: 'sudo cat /var/lib/cloud/instance/user-data.txt', iid: 'cat /var/lib/cloud/data/instance-id' });
      fs.writeFileSync(path.join(seed, 'user-data'), `${f['ud']}\n`);
      fs.writeFileSync(path.join(seed, 'meta-data'), `instance-id: ${f['iid']}\nlocal-hostname: ${name}\n`);
      const iso = path.join(host.dir, `${name}-seed.iso`);
      execFileSync('genisoimage', ['-quiet', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', path.join(seed, 'user-data'), path.join(seed, 'meta-data')]);
      g.destroy();

      const localName = `${name}-local`;
      fs.writeFileSync(path.join(host.dir, 'userdata', `${localName}.yaml`), TEMPLATE);
      const l = new Guest(host, {
        name: localName,
        image,
        extraDevices: `
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='${iso}'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>`,
      });
      const { boot: local } = await boot(host, l, null);
      l.destroy();
      rows.push({ style, mds, local });
      process.stdout.write(
        `${style}: mdserver ${mds.seconds.toFixed(1)} s (${mds.cpu.toFixed(1)} s CPU), local seed ${local.seconds.toFixed(1)} s (${local.cpu.toFixed(1)} s CPU), ` +
          `ratio ${(mds.seconds / local.seconds).toFixed(2)} wall, ${(mds.cpu / local.cpu).toFixed(2)} CPU\n`,
      );
    }
  } catch (e) {
    process.stderr.write(host.diagnostics());
    throw e;
  } finally {
    await host.stop();
  }
  process.stdout.write(`\nDebian ${suite}, cloud-init ${image.versions['cloud-init']}: virsh start to cloud-init finished\n`);
  process.stdout.write(`load average at the end: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
  process.stdout.write(
    '| style | mdserver: wall s (qemu CPU s) | local seed: wall s (qemu CPU s) | ratio wall | ratio CPU | mdserver requests | time in mdserver (ms) |\n' +
      '| --- | --- | --- | --- | --- | --- | --- |\n',
  );
  for (const r of rows) {
    const { mds, local } = r;
    process.stdout.write(
      `| ${r.style} | ${mds.seconds.toFixed(1)} (${mds.cpu.toFixed(1)}) | ${local.seconds.toFixed(1)} (${local.cpu.toFixed(1)}) | ` +
        `${(mds.seconds / local.seconds).toFixed(2)} | ${(mds.cpu / local.cpu).toFixed(2)} | ${mds.requests} | ${mds.mdserverMs.toFixed(0)} |\n`,
    );
  }
  for (const r of rows) {
    process.stdout.write(`\n${r.style}, seeded by mdserver: cloud-init analyze blame\n${r.mds.blame}\n${r.style}, local seed:\n${r.local.blame}\n`);
  }
}

await main();
