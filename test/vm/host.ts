// A libvirt host for real VMs, built inside a network namespace the test owns:
//
//   host namespace: br-mds (gateway and 169.254.169.254/32; fd00:ec2::1, fd00:ec2::254 and
//                   fe80::a9fe:a9fe), mdserver on 169.254.169.254:80 and the IPv6 addresses,
//                   dnsmasq started from the files mdserver writes (as mdserver-dnsmasq.service),
//                   and libvirtd, started by hand with private configuration, state and run
//                   directories, with mdserver's hook installed by system-integration.sh
//   guests:         qemu (TCG) started by that libvirtd, their NIC on br-mds
//
// libvirtd's paths are fixed when it is built (/etc/libvirt, /run/libvirt, /var/lib/libvirt...),
// so it runs in its own mount namespace where directories of the test's temporary tree are
// mounted over /etc/libvirt, /etc/default, /run, /var/lib, /var/cache and /var/log. Nothing of
// the machine's own libvirt is read or written, and virsh reaches the daemon through the socket in
// the temporary tree. Everything (VMs, daemons, namespaces, overlays) goes on any exit.

import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { iniText, tempDir, type Sections } from '../helpers.js';
import { Netns } from '../netns.js';
import { MDSERVER, ROOT, run, type Ran } from '../process.js';
import { GiveUp, poll } from './wait.js';

export const MDS = '169.254.169.254';
export const BRIDGE = 'br-mds';
/** The sample configuration's IPv6 gateway and metadata address. */
export const GATEWAY6 = 'fd00:ec2::1';
export const MDS6 = 'fd00:ec2::254';
const DNSMASQ = '/usr/sbin/dnsmasq';

export interface VmHostOptions {
  /** The VM network; 10.198.0.0/24 with gateway 10.198.0.1 unless given. */
  network?: { address: string; prefix: number; gateway: string };
  /** Ini sections merged over the host's configuration. */
  sections?: Sections;
  /** Files written below the configuration directory first (e.g. `userdata/vm1.yaml`). */
  files?: Record<string, string>;
  /** Directories libvirtd's guests read (the image cache), kept visible to it read-only. */
  shareDirs?: string[];
  /**
   * false: an IPv6-only network. The bridge gets no address in the IPv4 VM network (only
   * 169.254.169.254/32, mdserver's listener), so dnsmasq, which serves DHCPv4 only on a subnet of
   * its interface, hands no guest an IPv4 address; RA and DHCPv6 work as before.
   */
  ipv4?: boolean;
}

/** Why real-VM tests cannot run here, or null when they can. */
export function vmHostUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const t of ['libvirtd', 'virsh', 'qemu-system-x86_64', 'qemu-img', 'mmdebstrap', 'mkfs.ext4', 'ssh', 'ssh-keygen', 'unshare', DNSMASQ, 'curl']) {
    if (spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0) return `needs ${t} (scripts/install-vm-deps.sh installs it)`;
  }
  return null;
}

const hosts = new Set<VmHost>();
let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  // Registered before any namespace exists, so it runs before netns.ts deletes them: qemu is
  // daemonized by libvirtd (a new session), so killing the spawned process groups misses it.
  process.on('exit', () => {
    for (const h of hosts) h.killAllSync();
  });
}

export class VmHost {
  private procs: { name: string; child: ChildProcess }[] = [];
  private stopped = false;

  private constructor(
    readonly ns: Netns,
    readonly dir: string,
    readonly configFile: string,
    readonly network: { address: string; prefix: number; gateway: string },
    readonly sshKey: string,
    readonly sshPublicKey: string,
  ) {}

  /** Paths inside the temporary tree. */
  get staged(): string {
    return path.join(this.dir, 'root');
  }
  get socket(): string {
    return path.join(this.dir, 'run', 'libvirt', 'libvirt-sock');
  }
  get mdserverLogFile(): string {
    return path.join(this.dir, 'mdserver.log');
  }
  get dnsmasqLogFile(): string {
    return path.join(this.dir, 'dnsmasq.log');
  }
  get libvirtdLogFile(): string {
    return path.join(this.dir, 'log', 'libvirt', 'libvirtd.log');
  }

  static async start(opts: VmHostOptions = {}): Promise<VmHost> {
    hookExit();
    const network = opts.network ?? { address: '10.198.0.0', prefix: 24, gateway: '10.198.0.1' };
    const dir = tempDir('mdserver-vm-');
    fs.chmodSync(dir, 0o755);
    const key = path.join(dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'mdserver-vm-test', '-f', key]);
    const pub = fs.readFileSync(`${key}.pub`, 'utf8').trim();
    for (const [rel, text] of Object.entries(opts.files ?? {})) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), text);
    }
    const base: Sections = {
      mdserver: {
        port: 80,
        listen_address: MDS,
        userdata_dir: path.join(dir, 'userdata'),
        db_file: path.join(dir, 'mdserver.db'),
        logfile: path.join(dir, 'mdserver.log'),
        // As the sample configuration: the guests are dual-stack, served by DHCPv6 too.
        ipv6: 'yes',
      },
      // The file log keeps the access log (debug), with each request's time, for failures and
      // for the benchmark's breakdown.
      loglevels: { base: 'debug', stream: 'info', file: 'debug' },
      'public-keys': { default: pub },
      dnsmasq: {
        net_address: network.address,
        net_prefix: network.prefix,
        gateway: network.gateway,
        interface: BRIDGE,
        base_dir: path.join(dir, 'dnsmasq'),
        run_dir: path.join(dir, 'mdsrun'),
        // No mdserver user in the test's namespace to drop to.
        user: 'root',
      },
      _include_: { files: path.join(dir, 'mdserver.local.conf') },
    };
    const merged: Sections = { ...base };
    for (const [s, keys] of Object.entries(opts.sections ?? {})) merged[s] = { ...(merged[s] ?? {}), ...keys };
    fs.mkdirSync(path.join(dir, 'userdata'), { recursive: true });
    const configFile = path.join(dir, 'mdserver.conf');
    fs.writeFileSync(configFile, iniText(merged));

    const ns = Netns.create('mdsvmh');
    const host = new VmHost(ns, dir, configFile, network, key, pub);
    hosts.add(host);
    try {
      ns.ip('link', 'add', BRIDGE, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0');
      if (opts.ipv4 !== false) ns.ip('addr', 'add', `${network.gateway}/${network.prefix}`, 'dev', BRIDGE);
      ns.ip('addr', 'add', `${MDS}/32`, 'dev', BRIDGE);
      // The IPv6 addresses the network hook of doc/setup.md puts on the bridge.
      for (const a of [`${GATEWAY6}/64`, `${MDS6}/64`, 'fe80::a9fe:a9fe/64']) ns.ip('-6', 'addr', 'add', a, 'dev', BRIDGE, 'nodad');
      ns.ip('link', 'set', BRIDGE, 'up');
      await host.startMdserver();
      await host.startDnsmasq();
      await host.startLibvirtd(opts.shareDirs ?? []);
      return host;
    } catch (e) {
      process.stderr.write(host.diagnostics());
      await host.stop();
      throw e;
    }
  }

  private spawn(name: string, cmd: string, args: string[]): ChildProcess {
    const child = this.ns.spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = fs.createWriteStream(path.join(this.dir, `${name}.out`));
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    this.procs.push({ name, child });
    return child;
  }

  private async startMdserver(): Promise<void> {
    const child = this.spawn('mdserver', process.execPath, [MDSERVER, this.configFile]);
    await poll(
      'mdserver on 169.254.169.254:80',
      () => {
        if (child.exitCode !== null) throw new GiveUp(`mdserver exited: ${this.readFile('mdserver.out')}`);
        return this.ns.try('curl', ['-sf', '-o', '/dev/null', '--max-time', '2', `http://${MDS}/service/name`]).status === 0;
      },
      30000,
      300,
    );
  }

  /**
   * What mdserver-dnsmasq.service does: root writes dnsmasq's configuration into a directory of
   * its own (`mdserver dnsmasq-conf`), then dnsmasq starts from it, its pid file beside it. It logs
   * to a file the test reads, and never forwards a query to the machine's name servers.
   */
  private async startDnsmasq(): Promise<void> {
    const runDir = path.join(this.dir, 'mdsrun-dnsmasq');
    fs.mkdirSync(runDir, { mode: 0o755 });
    const conf = path.join(runDir, 'dnsmasq.conf');
    const r = await this.mdserver(['dnsmasq-conf', '--output', conf]);
    if (r.status !== 0) throw new Error(`mdserver dnsmasq-conf failed: ${r.stderr}${r.stdout}`);
    this.spawn('dnsmasq', DNSMASQ, ['--keep-in-foreground', `--conf-file=${conf}`, `--log-facility=${this.dnsmasqLogFile}`, '--log-dhcp', '--no-resolv']);
    const pid = path.join(runDir, 'mds.pid');
    await poll('dnsmasq pid file', () => fs.existsSync(pid) && fs.readFileSync(pid, 'utf8').trim() !== '', 15000, 200);
  }

  private async startLibvirtd(shareDirs: string[]): Promise<void> {
    const staged = this.staged;
    // The hook and its settings, installed as an administrator would, staged below PREFIX.
    const inst = await run('bash', [path.join(ROOT, 'system-integration.sh')], {
      env: { PREFIX: staged, MDSERVER_URL: `http://${MDS}`, MDSERVER_BIN: MDSERVER },
    });
    if (inst.status !== 0) throw new Error(`system-integration.sh failed: ${inst.stderr}${inst.stdout}`);
    const etc = path.join(staged, 'etc', 'libvirt');
    // Only the settings this host needs: qemu as root without a security driver (there is no
    // libvirt-qemu user or AppArmor profile here), no cgroups or per-VM mount namespaces (the
    // machine runs no systemd), and qemu's output written directly to files (no virtlogd).
    fs.writeFileSync(path.join(etc, 'libvirtd.conf'), 'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n');
    fs.writeFileSync(
      path.join(etc, 'qemu.conf'),
      [
        'user = "root"',
        'group = "root"',
        'dynamic_ownership = 0',
        'remember_owner = 0',
        'security_driver = "none"',
        'cgroup_controllers = [ ]',
        'namespaces = [ ]',
        'stdio_handler = "file"',
        '',
      ].join('\n'),
    );
    for (const d of ['run/libvirt', 'lib/libvirt', 'cache/libvirt', 'log/libvirt']) fs.mkdirSync(path.join(this.dir, d), { recursive: true });
    const mounts = [
      [etc, '/etc/libvirt'],
      [path.join(staged, 'etc', 'default'), '/etc/default'],
      [path.join(this.dir, 'run'), '/run'],
      [path.join(this.dir, 'lib'), '/var/lib'],
      [path.join(this.dir, 'cache'), '/var/cache'],
      [path.join(this.dir, 'log'), '/var/log'],
    ];
    // Shared directories may lie below a directory covered here (the image cache below /var/cache),
    // so each is first bound into the tree, and back to its own path once the covers are in place.
    const shares = shareDirs.map((d, i) => [path.resolve(d), path.join(this.dir, `share${i}`)] as const);
    for (const [, at] of shares) fs.mkdirSync(at);
    const script = [
      'set -e',
      ...shares.map(([d, at]) => `mount --bind '${d}' '${at}'`),
      ...mounts.map(([from, to]) => `mount --bind '${from}' '${to}'`),
      ...shares.map(([d, at]) => `mkdir -p '${d}' && mount --bind '${at}' '${d}' && mount -o remount,bind,ro '${d}'`),
      'exec libvirtd',
      '',
    ].join('\n');
    const child = this.spawn('libvirtd', 'unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script]);
    await poll(
      'libvirtd to answer',
      () => {
        if (child.exitCode !== null) throw new GiveUp(`libvirtd exited: ${this.readFile('libvirtd.out')}`);
        return fs.existsSync(this.socket) && this.virshTry(['version']).status === 0;
      },
      60000,
      500,
    );
  }

  readFile(rel: string): string {
    try {
      return fs.readFileSync(path.isAbsolute(rel) ? rel : path.join(this.dir, rel), 'utf8');
    } catch {
      return '';
    }
  }

  get uri(): string {
    return `qemu:///system?socket=${this.socket}`;
  }

  virshTry(args: string[], timeoutMs = 60000): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync('virsh', ['-q', '-c', this.uri, ...args], { encoding: 'utf8', timeout: timeoutMs });
    return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
  }

  virsh(...args: string[]): string {
    const r = this.virshTry(args);
    if (r.status !== 0) throw new Error(`virsh ${args.join(' ')} failed: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** `mdserver ARGS --config <this host's config>`, talking to the server over its admin socket. */
  mdserver(args: string[], timeoutMs?: number, input?: string): Promise<Ran> {
    return run(process.execPath, [MDSERVER, ...args, '--config', this.configFile], { timeoutMs, input });
  }

  /** `mdserver ARGS` for the commands that read no configuration (sysinfo). */
  mdserverCommand(args: string[]): Promise<Ran> {
    return run(process.execPath, [MDSERVER, ...args]);
  }

  /** Writes the included configuration file and has the running server reload it. */
  async reconfigure(sections: Sections): Promise<void> {
    fs.writeFileSync(path.join(this.dir, 'mdserver.local.conf'), iniText(sections));
    const r = await this.mdserver(['reload']);
    if (r.status !== 0) throw new Error(`mdserver reload failed: ${r.stderr}${r.stdout}`);
  }

  /**
   * Writes the included configuration file and restarts mdserver on it, for settings a reload
   * cannot apply (`[cloudstack] enabled` adds listeners). The database and the log carry over.
   */
  async restartWith(sections: Sections): Promise<void> {
    fs.writeFileSync(path.join(this.dir, 'mdserver.local.conf'), iniText(sections));
    const at = this.procs.findIndex((p) => p.name === 'mdserver');
    const old = this.procs[at]?.child;
    if (old?.pid && old.exitCode === null && old.signalCode === null) {
      const gone = new Promise<void>((resolve) => old.once('exit', () => resolve()));
      process.kill(-old.pid, 'SIGTERM');
      await gone;
    }
    if (at >= 0) this.procs.splice(at, 1);
    await this.startMdserver();
  }

  /** Runs a command in the guest over SSH as its default user, with the key mdserver served. */
  ssh(ip: string, command: string, timeoutMs = 30000): { status: number | null; stdout: string; stderr: string } {
    return this.ns.try(
      'ssh',
      [
        '-i', this.sshKey,
        '-o', 'BatchMode=yes',
        '-o', 'StrictHostKeyChecking=no',
        '-o', 'UserKnownHostsFile=/dev/null',
        '-o', 'LogLevel=ERROR',
        '-o', 'ConnectTimeout=5',
        `debian@${ip}`,
        command,
      ],
      undefined,
      timeoutMs,
    );
  }

  /** The last `lines` lines of a file in the tree (a guest's serial log, a daemon's log). */
  tail(rel: string, lines = 60): string {
    return this.readFile(rel).split('\n').slice(-lines).join('\n');
  }

  /** What to print when a test fails: the logs of every daemon, and each guest's serial console. */
  diagnostics(): string {
    let out = '';
    for (const f of fs.existsSync(this.dir) ? fs.readdirSync(this.dir).filter((f) => f.endsWith('.serial.log')) : []) {
      out += `\n--- ${f} (last 80 lines)\n${this.tail(f, 80)}\n`;
    }
    out += `\n--- mdserver.log (last 120 lines)\n${this.tail(this.mdserverLogFile, 120)}\n`;
    out += `\n--- mdserver output\n${this.tail('mdserver.out', 40)}\n`;
    out += `\n--- dnsmasq.log (last 40 lines)\n${this.tail(this.dnsmasqLogFile, 40)}\n`;
    out += `\n--- libvirtd (last 40 lines)\n${this.tail('libvirtd.out', 20)}\n${this.tail(this.libvirtdLogFile, 40)}\n`;
    return out;
  }

  /** Kills every guest and daemon at once (process exit): no waiting possible there. */
  killAllSync(): void {
    const qemuDir = path.join(this.dir, 'run', 'libvirt', 'qemu');
    try {
      for (const f of fs.readdirSync(qemuDir).filter((f) => f.endsWith('.pid'))) {
        const pid = Number(fs.readFileSync(path.join(qemuDir, f), 'utf8').trim());
        if (pid > 1) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    } catch {
      // no guests
    }
    for (const { child } of this.procs) {
      try {
        if (child.pid && child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.ns.delete();
    fs.rmSync(this.dir, { recursive: true, force: true });
    hosts.delete(this);
  }

  /** Destroys every guest, stops the daemons (politely first) and removes everything. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (fs.existsSync(this.socket)) {
      const list = this.virshTry(['list', '--name'], 15000);
      for (const name of list.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) this.virshTry(['destroy', name], 30000);
    }
    for (const { child } of [...this.procs].reverse()) {
      if (child.exitCode !== null || child.signalCode !== null || !child.pid) continue;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        continue;
      }
      const timer = setTimeout(() => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }, 10000);
      await gone;
      clearTimeout(timer);
    }
    this.killAllSync();
  }
}
