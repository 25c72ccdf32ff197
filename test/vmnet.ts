// A metadata network in network namespaces, for tests that drive real clients: a "host"
// namespace runs the real server (`bin/mdserver` as a child process) on 169.254.169.254:80 behind
// a bridge that holds the gateway address, and each VM is a namespace whose eth0 has the domain's
// MAC and the address mdserver allocated to it, as a guest on a libvirt network would.
//
// Nothing leaves these namespaces: VMs get a route to their subnet and to 169.254.169.254 only,
// and everything (namespaces, veths, the server process, the temporary directory) is removed by
// stop(), and by the exit hooks of netns.ts when a test dies first.

import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { domainXml, tempDir, writeConfig, type DomainSpec, type Sections } from './helpers.js';
import { bridge, Netns, veth, waitFor } from './netns.js';

export const MDS_ADDRESS = '169.254.169.254';
export const MDS_URL = `http://${MDS_ADDRESS}`;
const BRIDGE = 'br-mds';
const BIN = fileURLToPath(new URL('../../bin/mdserver', import.meta.url));

export interface VmNetOptions {
  /** Ini sections merged over the harness's configuration (e.g. `{ mdserver: { imds_tokens: 'required' } }`). */
  sections?: Sections;
  /** The VM network; 10.199.0.0/16 with gateway 10.199.0.1 unless given. */
  network?: { address: string; prefix: number; gateway: string };
  /** Files the server reads besides its configuration, written into its directory first (e.g. `userdata/test1.yaml`). */
  files?: Record<string, string>;
  /** A command the server is started under, e.g. `['prlimit', '--nofile=512:512', '--']`. */
  wrap?: string[];
}

export interface Vm {
  readonly spec: DomainSpec;
  readonly ns: Netns;
  /** The address mdserver allocated, configured on the VM's eth0. */
  readonly ipv4: string;
  /** Its bridge port (the host end of its veth), where the host's layer-2 filters see its frames. */
  readonly hostIf: string;
}

export interface HttpReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * One HTTP request made with curl from inside `ns`; curl is what a shell script on a VM would use,
 * and it runs where the namespace's routes apply. Header names come back in lower case.
 */
export function httpFrom(
  ns: Netns,
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: string; timeoutSeconds?: number } = {},
): HttpReply {
  const args = ['-sS', '-i', '--max-time', String(o.timeoutSeconds ?? 10), '-X', o.method ?? 'GET'];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}: ${v}`);
  if (o.body !== undefined) args.push('--data-binary', '@-');
  args.push(url);
  const r = ns.try('curl', args, o.body ?? '');
  if (r.status !== 0) throw new Error(`curl ${url} from ${ns.name} failed: ${r.stderr.trim()}`);
  const split = r.stdout.indexOf('\r\n\r\n');
  const head = split < 0 ? r.stdout : r.stdout.slice(0, split);
  const body = split < 0 ? '' : r.stdout.slice(split + 4);
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(/^HTTP\/[\d.]+ (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0), headers, body };
}

export class VmNet {
  private readonly vms: Vm[] = [];
  private output = '';
  private stopped = false;

  private constructor(
    readonly host: Netns,
    readonly dir: string,
    readonly configFile: string,
    readonly network: { address: string; prefix: number; gateway: string },
    readonly server: ChildProcess,
  ) {
    const keep = (c: Buffer): void => {
      // Enough to explain a failure, bounded so a chatty server cannot exhaust memory.
      this.output = (this.output + c.toString('utf8')).slice(-200_000);
    };
    server.stdout?.on('data', keep);
    server.stderr?.on('data', keep);
  }

  /** Builds the host namespace, starts the server in it and waits until it answers. */
  static async start(opts: VmNetOptions = {}): Promise<VmNet> {
    const network = opts.network ?? { address: '10.199.0.0', prefix: 16, gateway: '10.199.0.1' };
    const dir = tempDir('mdserver-vmnet-');
    for (const [rel, text] of Object.entries(opts.files ?? {})) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), text);
    }
    const base: Sections = {
      mdserver: { port: 80, listen_address: MDS_ADDRESS, logfile: path.join(dir, 'mdserver.log') },
      loglevels: { base: 'debug', stream: 'info', file: 'debug' },
      dnsmasq: {
        net_address: network.address,
        net_prefix: network.prefix,
        gateway: network.gateway,
        interface: BRIDGE,
        user: 'root',
      },
    };
    const merged: Sections = { ...base };
    for (const [s, keys] of Object.entries(opts.sections ?? {})) merged[s] = { ...(merged[s] ?? {}), ...keys };
    const configFile = writeConfig(dir, merged);

    const host = Netns.create('mdshost');
    let server: ChildProcess | undefined;
    try {
      bridge(host, BRIDGE, [`${network.gateway}/${network.prefix}`, `${MDS_ADDRESS}/32`]);
      const argv = [...(opts.wrap ?? []), process.execPath, BIN, configFile];
      server = host.spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      const net = new VmNet(host, dir, configFile, network, server);
      let exited: string | null = null;
      server.once('exit', (code, signal) => {
        exited = `exited with ${code ?? signal}`;
      });
      await waitFor(
        'mdserver to answer on 169.254.169.254',
        () => {
          if (exited) throw new Error(`mdserver ${exited}:\n${net.output}`);
          return host.try('curl', ['-sf', '-o', '/dev/null', '--max-time', '2', `${MDS_URL}/service/name`]).status === 0;
        },
        20000,
      ).catch((e: Error) => {
        throw new Error(exited ? `mdserver ${exited}:\n${net.output}` : `${e.message}\n${net.output}`);
      });
      return net;
    } catch (e) {
      if (server?.pid) {
        try {
          process.kill(server.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      host.delete();
      fs.rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** What the server printed so far (its log lines at the stream level, and any crash). */
  serverOutput(): string {
    return this.output;
  }

  /** The server's log file (every level the configuration writes there). */
  serverLog(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'mdserver.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Uploads a domain's XML from the host, as the libvirt hook does; returns the reply. */
  upload(spec: DomainSpec | string): HttpReply {
    const xml = typeof spec === 'string' ? spec : domainXml(spec);
    return httpFrom(this.host, `${MDS_URL}/instance-upload`, { method: 'POST', body: xml });
  }

  /**
   * Registers a domain and plugs in its VM: a namespace whose eth0 carries the domain's MAC and
   * the allocated address, bridged to the host, with a route to 169.254.169.254 via the gateway.
   */
  async addVm(spec: DomainSpec): Promise<Vm> {
    const r = this.upload(spec);
    const ipv4 = /ipv4=(\S+)/.exec(r.body)?.[1];
    if (r.status >= 300 || !ipv4) throw new Error(`upload of ${spec.name} failed: ${r.status} ${r.body}`);
    const ns = Netns.create('mdsvm');
    let hostIf: string;
    try {
      hostIf = veth(this.host, ns, spec.mac);
      this.host.ip('link', 'set', hostIf, 'master', BRIDGE);
      ns.ip('addr', 'add', `${ipv4}/${this.network.prefix}`, 'dev', 'eth0');
      ns.ip('route', 'add', `${MDS_ADDRESS}/32`, 'via', this.network.gateway, 'dev', 'eth0');
      await waitFor(
        `${spec.name} to reach 169.254.169.254`,
        // /service/ needs no token in any mode, so the probe leaves no refusal in the server's log.
        () => ns.try('curl', ['-sf', '-o', '/dev/null', '--max-time', '2', `${MDS_URL}/service/name`]).status === 0,
        10000,
      );
    } catch (e) {
      ns.delete();
      throw e;
    }
    const vm = { spec, ns, ipv4, hostIf };
    this.vms.push(vm);
    return vm;
  }

  /** Stops the server (SIGTERM, then SIGKILL) and removes every namespace and file made here. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const s = this.server;
    if (s.exitCode === null && s.signalCode === null && s.pid) {
      const gone = new Promise<void>((resolve) => s.once('exit', () => resolve()));
      s.kill('SIGTERM');
      const timer = setTimeout(() => s.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    }
    for (const vm of this.vms) vm.ns.delete();
    this.host.delete();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
