// mdserver's systemd units under a real systemd: the Debian 12 guest image's own systemd boots as
// PID 1 in a container (systemd-nspawn), mdserver is installed there as doc/setup.md says (the
// packed tarball under /usr/local, then system-integration.sh), and `systemctl enable --now
// mdserver mdserver-dnsmasq` has to bring up a sandboxed server on port 80 and its dnsmasq.
//
//   test's network namespace: br-mds with 10.122.0.1/16 and 169.254.169.254/32 (the sample
//                             configuration's network), and the IPv6 addresses doc/setup.md's
//                             network hook adds (the sample turns ipv6 on); shared by the container
//   container:                the cached image's root file system (read-only) under an overlay
//                             that goes with the test; the host's node binary bound read-only
//                             onto /usr/local/bin/node (Debian 12 ships Node 18)
//
// The container runs in a mount namespace of the test's own (unshare), so its loop device,
// overlay and every mount are gone when its processes are; on any exit the container's init is
// killed, which ends every process in it. Runs with `npm run test:vm`.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers.js';
import { Netns } from '../netns.js';
import { ROOT, run, type Ran } from '../process.js';
import { vmHostUnavailable } from './host.js';
import { ensureImage, type Image } from './image.js';
import { GiveUp, poll } from './wait.js';

const MDS = '169.254.169.254';
const GATEWAY = '10.122.0.1/16';
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const KEY1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1RnpyJtDWfPRq+MWRZNU2/4kGj2K8GdQn0Rzrm6qXR first@test';
const KEY2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGzTQ7mcY8bB5b2G7h0dX1aJ4Xz9qH2m9Jb3QyJx1c7V second@test';
const VM = { name: 'vm1', uuid: 'becb25c7-b581-4ecd-b60e-a9942ad18879', mac: '52:54:00:3a:cf:41' };
/** The domain XML libvirt hands its qemu hook as a VM starts (trimmed to what mdserver reads). */
const VM_XML = `<domain type='kvm'>
  <name>${VM.name}</name>
  <uuid>${VM.uuid}</uuid>
  <devices>
    <interface type='network'>
      <mac address='${VM.mac}'/>
      <source network='mds' bridge='br-mds'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>
`;

function unavailable(): string | null {
  const why = vmHostUnavailable();
  if (why) return why;
  for (const t of ['systemd-nspawn', 'nsenter', 'npm']) {
    if (spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0) return `needs ${t} (scripts/install-vm-deps.sh installs it)`;
  }
  return null;
}

const skip = unavailable();
if (skip && process.env['CI'] === 'true') throw new Error(`the systemd test cannot run under CI: ${skip}`);

const containers = new Set<Container>();

class Container {
  private init = 0;
  private stopped = false;

  private constructor(
    readonly dir: string,
    readonly ns: Netns,
    readonly nspawn: ChildProcess,
  ) {}

  get upper(): string {
    return path.join(this.dir, 'upper');
  }

  /**
   * Installs mdserver into the overlay's upper layer, then boots the image's systemd on it. What
   * lands in /usr/local is what `npm install -g` of the packed tarball makes: the package in
   * lib/node_modules/mdserver and the command linked into bin. The dependencies come from npm's
   * cache with the project's lockfile (the test never reaches a registry), and the SQLite module is
   * the one already built for this very node binary.
   */
  static async start(image: Image): Promise<Container> {
    const dir = tempDir('mdserver-systemd-');
    fs.chmodSync(dir, 0o755);
    for (const d of ['lower', 'upper', 'work', 'root']) fs.mkdirSync(path.join(dir, d));
    const upper = path.join(dir, 'upper');

    const packed = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, timeoutMs: 120000 });
    if (packed.status !== 0) throw new Error(`npm pack failed: ${packed.stderr}`);
    const tarball = path.join(dir, packed.stdout.trim().split('\n').pop() as string);
    const pkg = path.join(upper, 'usr/local/lib/node_modules/mdserver');
    fs.mkdirSync(pkg, { recursive: true });
    const untar = await run('tar', ['xzf', tarball, '--strip-components=1', '-C', pkg]);
    if (untar.status !== 0) throw new Error(`tar failed: ${untar.stderr}`);
    fs.copyFileSync(path.join(ROOT, 'package-lock.json'), path.join(pkg, 'package-lock.json'));
    const ci = await run('npm', ['ci', '--omit=dev', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: pkg, timeoutMs: 300000 });
    if (ci.status !== 0) throw new Error(`npm ci --offline in the container's /usr/local failed: ${ci.stderr}${ci.stdout}`);
    const addon = 'node_modules/better-sqlite3/build/Release/better_sqlite3.node';
    fs.mkdirSync(path.dirname(path.join(pkg, addon)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, addon), path.join(pkg, addon));
    fs.mkdirSync(path.join(upper, 'usr/local/bin'), { recursive: true });
    fs.symlinkSync('../lib/node_modules/mdserver/bin/mdserver', path.join(upper, 'usr/local/bin/mdserver'));
    // The image is a cloud image; in the container nothing is there for cloud-init to find.
    fs.mkdirSync(path.join(upper, 'etc/cloud'), { recursive: true });
    fs.writeFileSync(path.join(upper, 'etc/cloud/cloud-init.disabled'), '');

    const ns = Netns.create('mdssd');
    ns.ip('link', 'add', 'br-mds', 'type', 'bridge');
    ns.ip('addr', 'add', GATEWAY, 'dev', 'br-mds');
    ns.ip('addr', 'add', `${MDS}/32`, 'dev', 'br-mds');
    for (const a of ['fd00:ec2::1/64', 'fd00:ec2::254/64', 'fe80::a9fe:a9fe/64']) ns.ip('-6', 'addr', 'add', a, 'dev', 'br-mds', 'nodad');
    ns.ip('link', 'set', 'br-mds', 'up');

    // --register=no and --keep-unit: this machine has no systemd of its own to register with.
    // The container joins the test's network namespace, where dnsmasq needs CAP_NET_ADMIN (which
    // nspawn grants by itself only with a network it makes). Its /etc/resolv.conf stays the
    // image's (empty), so nothing in it forwards a query to the machine's name servers.
    const root = path.join(dir, 'root');
    const script = [
      'set -e',
      `mount -o loop,ro '${image.root}' '${dir}/lower'`,
      `mount -t overlay overlay -o 'lowerdir=${dir}/lower,upperdir=${upper},workdir=${dir}/work' '${root}'`,
      [
        'exec systemd-nspawn --boot --register=no --keep-unit --console=pipe --machine=mdserver-test',
        `--directory='${root}'`,
        `--network-namespace-path=/run/netns/${ns.name}`,
        '--capability=CAP_NET_ADMIN',
        '--resolv-conf=off',
        `--bind-ro='${process.execPath}:/usr/local/bin/node'`,
      ].join(' '),
      '',
    ].join('\n');
    const nspawn = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script], {
      detached: true,
      stdio: ['ignore', fs.openSync(path.join(dir, 'console.log'), 'a'), fs.openSync(path.join(dir, 'console.log'), 'a')],
    });
    const c = new Container(dir, ns, nspawn);
    containers.add(c);
    hookExit();
    try {
      await poll(
        "the container's systemd",
        () => {
          if (nspawn.exitCode !== null) throw new GiveUp(`systemd-nspawn exited: ${c.console()}`);
          c.init = c.findInit();
          return c.init > 0;
        },
        60000,
        500,
      );
      await poll(
        'the container to finish booting',
        async () => {
          if (nspawn.exitCode !== null) throw new GiveUp(`systemd-nspawn exited: ${c.console()}`);
          const r = await c.exec(['systemctl', 'is-system-running'], { timeoutMs: 30000 });
          return /^(running|degraded)$/m.test(r.stdout);
        },
        180000,
      );
      return c;
    } catch (e) {
      process.stderr.write(await c.diagnostics());
      await c.stop();
      throw e;
    }
  }

  /** The container's PID 1 (systemd, the child of systemd-nspawn), or 0 while it is not there. */
  private findInit(): number {
    const pid = this.nspawn.pid;
    if (!pid) return 0;
    try {
      for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
        for (const child of fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
          if (fs.readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'systemd') return Number(child);
        }
      }
    } catch {
      // not there yet
    }
    return 0;
  }

  console(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'console.log'), 'utf8').split('\n').slice(-40).join('\n');
    } catch {
      return '';
    }
  }

  /** Runs a command inside the container (all its namespaces, its root), as root. */
  exec(cmd: string[], o: { input?: string; timeoutMs?: number } = {}): Promise<Ran> {
    return run('nsenter', ['-t', String(this.init), '-a', '-r', '-w', 'env', '-i', PATH_ENV, 'LANG=C.UTF-8', ...cmd], { input: o.input, timeoutMs: o.timeoutMs ?? 60000 });
  }

  /** exec() that must succeed; returns its output. */
  async sh(command: string, input?: string): Promise<string> {
    const r = await this.exec(['sh', '-c', command], { input });
    if (r.status !== 0) throw new Error(`in the container: ${command}: exit ${r.status}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** An HTTP GET from the test's network namespace, optionally from a given local address. */
  curl(url: string, from?: string): { status: number | null; stdout: string; stderr: string } {
    return this.ns.try('curl', ['-sS', '--max-time', '10', ...(from ? ['--interface', from] : []), url]);
  }

  async diagnostics(): Promise<string> {
    let out = `\n--- container console (last 40 lines)\n${this.console()}\n`;
    if (this.init > 0) {
      const j = await this.exec(['sh', '-c', 'systemctl --no-pager status mdserver mdserver-dnsmasq; journalctl -b --no-pager | tail -n 120'], { timeoutMs: 30000 });
      out += `\n--- the container's systemctl status and journal\n${j.stdout}${j.stderr}\n`;
    }
    return out;
  }

  /** Kills the container's init (which ends every process in it) and systemd-nspawn at once. */
  killSync(): void {
    for (const pid of [this.init, this.nspawn.pid ? -this.nspawn.pid : 0]) {
      if (!pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.ns.delete();
    fs.rmSync(this.dir, { recursive: true, force: true });
    containers.delete(this);
  }

  /** Shuts the container down (systemd-nspawn passes SIGTERM on as a halt request), then removes it. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.nspawn.exitCode === null && this.nspawn.signalCode === null) {
      const gone = new Promise<void>((resolve) => this.nspawn.once('exit', () => resolve()));
      this.nspawn.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([gone, new Promise<void>((resolve) => (timer = setTimeout(resolve, 60000)))]);
      clearTimeout(timer);
    }
    this.killSync();
  }
}

let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  // Registered after netns.ts's own exit handler, which only knows about its namespaces.
  process.on('exit', () => {
    for (const c of containers) c.killSync();
  });
}

/** The value of each `systemctl show` property asked for. */
async function show(c: Container, unit: string, props: string[]): Promise<Record<string, string>> {
  const out = await c.sh(`systemctl show ${unit} ${props.map((p) => `-p ${p}`).join(' ')}`);
  const values: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) values[line.slice(0, i)] = line.slice(i + 1);
  }
  return values;
}

async function waitActive(c: Container, unit: string): Promise<void> {
  await poll(`${unit} to be active`, async () => (await c.exec(['systemctl', 'is-active', unit])).stdout.trim() === 'active', 60000);
}

/** How many times dnsmasq has logged reading the DHCP hosts file (once at start, once per SIGHUP). */
async function hostsReads(c: Container): Promise<number> {
  const out = await c.sh('journalctl -b -u mdserver-dnsmasq -o cat --no-pager');
  return out.split('\n').filter((l) => /read \/var\/lib\/mdserver\/dnsmasq\/dhcp\/mds\.dhcp-hosts/.test(l)).length;
}

/**
 * Runs each step as a subtest, in order. A failed step prints the container's journal and skips
 * the steps after it (they build on it).
 */
function stepper(t: TestContext, c: Container): (name: string, body: () => Promise<void>) => Promise<void> {
  let failed: string | null = null;
  return async (name, body) => {
    await t.test(name, { skip: failed ? `after the failed step: ${failed}` : false }, async () => {
      try {
        await body();
      } catch (e) {
        failed = name;
        process.stderr.write(await c.diagnostics());
        throw e;
      }
    });
  };
}

async function steps(t: TestContext, c: Container): Promise<void> {
  let ip = '';
  let pid = '';
  const step = stepper(t, c);

  await step('installed as doc/setup.md says: system-integration.sh creates the user and installs the units', async () => {
    const out = await c.sh('mdserver --version && bash /usr/local/lib/node_modules/mdserver/system-integration.sh');
    assert.match(out, /created\s+user mdserver/);
    assert.match(out, /installed\s+\/etc\/systemd\/system\/mdserver\.service/);
    assert.match(out, /reloaded\s+systemd units/);
    await c.sh('cat > /etc/mdserver/mdserver.conf.d/10-keys.conf', `[public-keys]\nfirst = ${KEY1}\n`);
    await c.sh('mdserver --check-config /etc/mdserver/mdserver.conf');
  });

  await step('systemctl enable --now: ready (Type=notify), port 80 as the mdserver user, state written, dnsmasq up', async () => {
    await c.sh('systemctl enable --now mdserver.service mdserver-dnsmasq.service');
    // For Type=notify, "active" means the server sent READY=1 (systemctl waited for it).
    const s = await show(c, 'mdserver', ['ActiveState', 'SubState', 'StatusText', 'MainPID', 'UnitFileState']);
    assert.equal(s['ActiveState'], 'active', JSON.stringify(s));
    assert.equal(s['UnitFileState'], 'enabled');
    assert.match(s['StatusText'] ?? '', /169\.254\.169\.254:80/);
    pid = s['MainPID'] ?? '';
    assert.match(pid, /^[1-9]\d*$/);

    // The listener on port 80 is the main process, running as mdserver with one capability.
    assert.match(await c.sh(`ss -Hltnp 'sport = :80'`), new RegExp(`${MDS.replace(/\./g, '\\.')}:80 .*pid=${pid},`));
    assert.equal((await c.sh(`ps -o user= -p ${pid}`)).trim(), 'mdserver');
    const caps = await c.sh(`grep -E '^Cap(Eff|Bnd):' /proc/${pid}/status`);
    assert.match(caps, /^CapEff:\s+0000000000000400$/m, caps);
    assert.match(caps, /^CapBnd:\s+0000000000000400$/m, caps);
    assert.equal(c.curl(`http://${MDS}/service/name`).stdout, 'mdserver');

    // Its state, owned by its user: the database and dnsmasq's data files; dnsmasq's own
    // configuration, which dnsmasq reads as root, is root's and out of that user's reach.
    const owned = await c.sh('stat -c "%U %n" /var/lib/mdserver /var/lib/mdserver/dnsmasq/mds.opts /var/lib/mdserver/dnsmasq/dhcp/mds.dhcp-hosts /run/mdserver/admin.sock');
    for (const line of owned.trim().split('\n')) assert.match(line, /^mdserver /, owned);
    assert.notEqual((await c.sh('find /var/lib/mdserver -maxdepth 1 -user mdserver -name "*.sqlite*"')).trim(), '');

    // dnsmasq, started after mdserver from its files, is what `mdserver status` finds.
    await waitActive(c, 'mdserver-dnsmasq');
    assert.match(await c.sh('stat -c "%U %a %n" /run/mdserver-dnsmasq /run/mdserver-dnsmasq/dnsmasq.conf'), /^root 755 \/run\/mdserver-dnsmasq\nroot 644 \/run\/mdserver-dnsmasq\/dnsmasq\.conf\n$/);
    await poll('mdserver status to be healthy', async () => (await c.exec(['mdserver', 'status'])).status === 0, 30000);
  });

  await step("the libvirt hook's upload registers a VM and dnsmasq is signalled", async () => {
    const before = await hostsReads(c);
    const hook = await c.exec(['/etc/libvirt/hooks/qemu.d/mdserver', VM.name, 'prepare', 'begin', '-'], { input: VM_XML });
    assert.equal(hook.status, 0, hook.stderr);
    assert.equal(hook.stdout, '', 'the hook prints nothing on stdout');
    const logged = await c.sh('journalctl -b -t mdserver-hook -o cat --no-pager');
    const m = new RegExp(`registered ${VM.name} mac=${VM.mac} ipv4=(10\\.122\\.\\d+\\.\\d+)`).exec(logged);
    assert.ok(m, logged);
    ip = m[1] as string;
    // The sample configuration serves IPv6: the line binds the derived IPv6 address to the MAC too.
    assert.match(await c.sh('cat /var/lib/mdserver/dnsmasq/dhcp/mds.dhcp-hosts'), new RegExp(`^${VM.mac},.*${ip.replace(/\./g, '\\.')},\\[fd00:ec2::[0-9a-f:]+\\],${VM.name},`, 'm'));
    await poll('dnsmasq to re-read its hosts file', async () => (await hostsReads(c)) > before, 20000);

    // The VM's view: requests from its address get its metadata.
    c.ns.ip('addr', 'add', `${ip}/32`, 'dev', 'br-mds');
    assert.equal(c.curl(`http://${MDS}/latest/meta-data/local-hostname`, ip).stdout, VM.name);
    assert.equal(c.curl(`http://${MDS}/latest/meta-data/public-keys/`, ip).stdout.trim(), '0=first');
  });

  await step('systemctl reload mdserver re-reads the configuration', async () => {
    await c.sh('cat > /etc/mdserver/mdserver.conf.d/10-keys.conf', `[public-keys]\nfirst = ${KEY1}\nsecond = ${KEY2}\n`);
    await c.sh('systemctl reload mdserver');
    await poll('the reloaded keys to be served', () => c.curl(`http://${MDS}/latest/meta-data/public-keys/`, ip).stdout.trim() === '0=first\n1=second', 20000);
    assert.equal((await show(c, 'mdserver', ['MainPID']))['MainPID'], pid, 'a reload keeps the process');
  });

  await step('systemctl restart mdserver keeps every record, and dnsmasq comes back with it', async () => {
    await c.sh('systemctl restart mdserver');
    const s = await show(c, 'mdserver', ['ActiveState', 'MainPID']);
    assert.equal(s['ActiveState'], 'active');
    assert.notEqual(s['MainPID'], pid);
    const inst = JSON.parse(await c.sh(`mdserver instances show ${VM.name} --json`)) as { ipv4: string; mac: string };
    assert.equal(inst.ipv4, ip);
    assert.equal(inst.mac, VM.mac);
    assert.equal(c.curl(`http://${MDS}/latest/meta-data/local-hostname`, ip).stdout, VM.name);
    await waitActive(c, 'mdserver-dnsmasq');
    assert.match(await c.sh('cat /var/lib/mdserver/dnsmasq/dhcp/mds.dhcp-hosts'), new RegExp(`,${ip.replace(/\./g, '\\.')},\\[fd00:ec2::[0-9a-f:]+\\],${VM.name},`));
    await poll('mdserver status to be healthy', async () => (await c.exec(['mdserver', 'status'])).status === 0, 30000);
  });

  await step('systemctl stop is clean, and journalctl -u mdserver shows its log', async () => {
    await c.sh('systemctl stop mdserver');
    for (const unit of ['mdserver', 'mdserver-dnsmasq']) {
      const s = await show(c, unit, ['ActiveState', 'Result']);
      assert.equal(s['ActiveState'], 'inactive', `${unit}: ${JSON.stringify(s)}`);
      assert.equal(s['Result'], 'success', `${unit}: ${JSON.stringify(s)}`);
    }
    assert.notEqual((await c.exec(['pgrep', '-x', 'dnsmasq'])).status, 0, 'dnsmasq is gone');
    assert.notEqual(c.curl(`http://${MDS}/service/name`).status, 0, 'nothing listens on port 80');
    const log = await c.sh('journalctl -b -u mdserver -o cat --no-pager');
    for (const line of [/listening address="169\.254\.169\.254" port=80/, /configuration reloaded/, /stopped/]) assert.match(log, line);
  });
}

test("mdserver's systemd units under the Debian 12 image's own systemd", { skip: skip ?? false }, async (t) => {
  const image = ensureImage('bookworm');
  const started = Date.now();
  const c = await Container.start(image);
  t.diagnostic(`container booted in ${((Date.now() - started) / 1000).toFixed(1)} s (with the install into its overlay)`);
  try {
    await steps(t, c);
  } finally {
    await c.stop();
  }
});
