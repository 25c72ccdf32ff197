// The hosts of a cluster in network namespaces, for tests of what a cluster's VMs see: each host
// is a namespace with its own bridge `br-mds` (the same VM subnet and gateway on every host, as a
// VM network stretched across hosts would have), 169.254.169.254 on that bridge, its own mdserver
// (`bin/mdserver` as a child process, with its own directory) whose `[store] url` is the shared
// PostgreSQL's unix socket, and its own dnsmasq started as mdserver-dnsmasq.service starts it,
// from the files that host's mdserver writes. VMs are namespaces plugged into one host's bridge
// by a veth carrying the domain's MAC. Everything is removed by the exit hooks of netns.ts and
// helpers.ts when a test dies first.

import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { domainXml, tempDir, writeConfig, type DomainSpec, type Sections } from './helpers.js';
import { bridge, Netns, veth, waitFor, writeDhclientScript } from './netns.js';
import { HOOK, MDSERVER } from './process.js';
import { readUnit, startUnit, type Started } from './unit.js';
import { httpFrom, MDS_ADDRESS, MDS_URL, type HttpReply } from './vmnet.js';

/** The VM network of every host: one subnet, as a shared VM network is. */
export const VM_NET = { address: '10.197.0.0', prefix: 16, gateway: '10.197.0.1' };
const BRIDGE = 'br-mds';

export class ClusterHost {
  private server: ChildProcess | null = null;
  private out = '';
  private dnsmasq: Started | null = null;

  private constructor(
    /** `[store] host_name`. */
    readonly name: string,
    readonly ns: Netns,
    readonly dir: string,
    readonly config: string,
  ) {}

  /** Builds the host's namespace and bridge, starts its mdserver, then its dnsmasq. */
  static async start(name: string, storeUrl: string, extra: Sections = {}): Promise<ClusterHost> {
    const dir = tempDir('mdserver-clh-');
    const sections: Sections = {
      mdserver: { port: 80, listen_address: MDS_ADDRESS, logfile: path.join(dir, 'mdserver.log'), ...extra['mdserver'] },
      loglevels: { base: 'debug', stream: 'info', file: 'debug' },
      store: { url: storeUrl, host_name: name },
      dnsmasq: { net_address: VM_NET.address, net_prefix: VM_NET.prefix, gateway: VM_NET.gateway, interface: BRIDGE, user: 'root' },
    };
    const host = new ClusterHost(name, Netns.create('mdscl'), dir, writeConfig(dir, sections));
    // The same MAC on every host, as a network stretched across hosts has one gateway.
    bridge(host.ns, BRIDGE, [`${VM_NET.gateway}/${VM_NET.prefix}`, `${MDS_ADDRESS}/32`]);
    fs.writeFileSync(path.join(dir, 'hook-defaults'), `MDSERVER_URL=${MDS_URL}\n`);
    await host.startServer();
    // mdserver-dnsmasq.service starts after mdserver.service is ready, as here.
    host.dnsmasq = startUnit(host.ns, readUnit('mdserver-dnsmasq.service'), {
      '/etc/mdserver/mdserver.conf': host.config,
      '/usr/local/bin/mdserver': MDSERVER,
      '/run/mdserver-dnsmasq': path.join(dir, 'run-dnsmasq'),
    }, ['--log-facility=-', '--log-dhcp']);
    await waitFor(`${name}'s dnsmasq`, () => fs.existsSync(host.pidFile) && fs.readFileSync(host.pidFile, 'utf8').trim() !== '', 15000);
    return host;
  }

  get adminSocket(): string {
    return path.join(this.dir, 'run', 'admin.sock');
  }

  get pidFile(): string {
    return path.join(this.dir, 'run-dnsmasq', 'mds.pid');
  }

  /** Starts (or starts again) this host's mdserver and waits until it answers on 169.254.169.254. */
  async startServer(): Promise<void> {
    const server = this.ns.spawn(process.execPath, [MDSERVER, this.config]);
    this.server = server;
    server.stdout?.on('data', (c: Buffer) => (this.out = (this.out + c.toString()).slice(-100_000)));
    server.stderr?.on('data', (c: Buffer) => (this.out = (this.out + c.toString()).slice(-100_000)));
    await waitFor(`${this.name}'s mdserver on ${MDS_ADDRESS}`, () => {
      if (server.exitCode !== null) throw new Error(`${this.name}'s mdserver exited: ${this.out}`);
      return this.ns.try('curl', ['-sf', '-o', '/dev/null', '--max-time', '2', `${MDS_URL}/service/name`]).status === 0;
    }, 30000).catch((e: Error) => {
      throw new Error(`${e.message}\n${this.out}`);
    });
  }

  /** Kills this host's mdserver with SIGKILL, as a crash or the OOM killer would. */
  async kill9(): Promise<void> {
    const s = this.server;
    if (!s || s.exitCode !== null || s.signalCode !== null) return;
    const gone = new Promise((r) => s.once('exit', r));
    s.kill('SIGKILL');
    await gone;
  }

  /** The project's hook, run in this host's namespace as libvirt runs it: arguments and the XML on stdin. */
  hook(op: 'prepare' | 'migrate', spec: DomainSpec): { status: number | null; stdout: string; stderr: string } {
    return this.ns.try('env', [`MDSERVER_DEFAULTS=${path.join(this.dir, 'hook-defaults')}`, 'MDSERVER_HOOK_SYSLOG=no',
      HOOK, spec.name, op, 'begin', '-'], domainXml(spec), 30000);
  }

  /** POST /instance-upload over the admin socket (what the hook does when MDSERVER_SOCKET is set). */
  upload(xml: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath: this.adminSocket, path: '/instance-upload', method: 'POST', agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(xml);
    });
  }

  /** A host-only request from the host itself (its source is 169.254.169.254). */
  fromHost(p: string): HttpReply {
    return httpFrom(this.ns, `${MDS_URL}${p}`);
  }

  health(): { status: string; problems: string[]; instances: number } {
    return JSON.parse(this.fromHost('/health').body) as { status: string; problems: string[]; instances: number };
  }

  dhcpHosts(): string {
    const f = path.join(this.dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts');
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
  }

  dnsmasqPid(): string {
    return fs.readFileSync(this.pidFile, 'utf8').trim();
  }

  /** What mdserver printed and logged, and dnsmasq's output: for a failure's message. */
  logs(): string {
    const log = fs.existsSync(path.join(this.dir, 'mdserver.log')) ? fs.readFileSync(path.join(this.dir, 'mdserver.log'), 'utf8') : '';
    return `--- ${this.name} mdserver\n${this.out}\n--- ${this.name} log\n${log.slice(-20_000)}\n--- ${this.name} dnsmasq\n${this.dnsmasq?.output().slice(-10_000) ?? ''}`;
  }

  /**
   * Plugs a VM into this host's bridge: a namespace whose eth0 has `spec`'s MAC. With `ipv4` it
   * gets that address and a route to 169.254.169.254 via the gateway; without, it has no address
   * until a DHCP client gives it one.
   */
  attach(spec: DomainSpec, ipv4?: string, ns = Netns.create('mdsclv')): Netns {
    this.ns.ip('link', 'set', veth(this.ns, ns, spec.mac), 'master', BRIDGE);
    if (ipv4) address(ns, ipv4);
    return ns;
  }

  /** Stops mdserver (SIGTERM) and dnsmasq, and deletes the namespace. */
  async stop(): Promise<void> {
    const s = this.server;
    if (s && s.exitCode === null && s.signalCode === null) {
      const gone = new Promise((r) => s.once('exit', r));
      s.kill('SIGTERM');
      const timer = setTimeout(() => s.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    }
    this.dnsmasq?.child.kill('SIGKILL');
    this.ns.delete();
  }
}

/** Gives a VM `ipv4` on eth0 and its route to 169.254.169.254, as DHCP would. */
export function address(vm: Netns, ipv4: string): void {
  vm.ip('addr', 'replace', `${ipv4}/${VM_NET.prefix}`, 'dev', 'eth0');
  vm.ip('route', 'replace', `${MDS_ADDRESS}/32`, 'via', VM_NET.gateway, 'dev', 'eth0');
}

/** Unplugs a VM from the host it was on (its veth goes, the namespace stays), as a migration does. */
export function unplug(vm: Netns): void {
  vm.ip('link', 'del', 'eth0');
}

/** A metadata path from inside a VM. */
export function metadata(vm: Netns, p: string): HttpReply {
  return httpFrom(vm, `${MDS_URL}${p}`, { timeoutSeconds: 3 });
}

/**
 * A real dhclient in the VM with a fresh lease file (so it asks by DHCPDISCOVER, and only a server
 * that knows the MAC offers an address): the address the lease holds.
 */
export async function dhclient(vm: Netns, dir: string): Promise<string> {
  const base = path.join(dir, `dhclient-${vm.name}-${Date.now()}`);
  // The address, nothing else: the lease is what the test reads.
  const script = writeDhclientScript(`${base}.script`);
  fs.writeFileSync(`${base}.conf`, 'request subnet-mask, routers;\n');
  const leases = `${base}.leases`;
  const child = vm.spawn('dhclient', ['-d', '-1', '-cf', `${base}.conf`, '-lf', leases, '-pf', `${base}.pid`, '-sf', script, 'eth0']);
  let out = '';
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  try {
    await waitFor('a dhclient lease', () => fs.existsSync(leases) && /fixed-address/.test(fs.readFileSync(leases, 'utf8')), 30000)
      .catch((e: Error) => {
        throw new Error(`${e.message}\n${out}`);
      });
  } finally {
    child.kill('SIGKILL');
  }
  return /fixed-address ([\d.]+);/.exec(fs.readFileSync(leases, 'utf8'))?.[1] ?? '';
}
