// Network namespaces for tests that need a real network: a "host" namespace that holds the
// bridge side, the gateway and 169.254.169.254, and "VM" namespaces attached by veth pairs.
// Every namespace and process made here is removed on any exit, including a failed assertion or
// a signal, so a broken run leaves nothing behind. Traffic stays inside these namespaces.

import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';

const created = new Set<string>();
const children = new Set<ChildProcess>();

function cleanupAll(): void {
  for (const c of children) {
    try {
      if (c.pid) process.kill(-c.pid, 'SIGKILL');
    } catch {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const ns of created) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  created.clear();
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      cleanupAll();
      process.exit(130);
    });
  }
}

/** Why namespace tests cannot run here, or null when they can. */
export function netnsUnavailable(tools: string[] = []): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (spawnSync('ip', ['netns', 'list'], { stdio: 'ignore' }).status !== 0) return 'needs iproute2 with netns support';
  for (const t of tools) {
    if (spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0) return `needs ${t}`;
  }
  return null;
}

/**
 * The skip option for node:test: namespace tests skip on a developer machine that lacks root or
 * the tools, but under CI (CI=true) a missing prerequisite is a failure, never a silent skip.
 */
export function skipUnlessNetns(tools: string[] = []): { skip: string | false } {
  const why = netnsUnavailable(tools);
  if (why && process.env['CI'] === 'true') throw new Error(`namespace tests cannot run under CI: ${why}`);
  return { skip: why ?? false };
}

export function uniqueName(prefix: string): string {
  return `${prefix}${randomBytes(3).toString('hex')}`;
}

export class Netns {
  private constructor(readonly name: string) {}

  static create(prefix: string): Netns {
    hookExit();
    const name = uniqueName(prefix);
    execFileSync('ip', ['netns', 'add', name]);
    created.add(name);
    const ns = new Netns(name);
    ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  ip(...args: string[]): string {
    return execFileSync('ip', ['-n', this.name, ...args], { encoding: 'utf8' });
  }

  /** Runs a command inside the namespace and returns its stdout; throws on a non-zero exit. */
  run(cmd: string, args: string[], input?: string, timeoutMs = 60000): string {
    return execFileSync('ip', ['netns', 'exec', this.name, cmd, ...args], {
      encoding: 'utf8',
      input,
      timeout: timeoutMs,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  }

  /** Like run, but returns status, stdout and stderr instead of throwing. */
  try(cmd: string, args: string[], input?: string, timeoutMs = 60000): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', this.name, cmd, ...args], { encoding: 'utf8', input, timeout: timeoutMs });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Starts a long-running process in the namespace; it is killed at cleanup if still alive. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { detached: true, stdio: 'pipe', ...opts });
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  }

  delete(): void {
    spawnSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    created.delete(this.name);
  }
}

/** Kills every process started through Netns.spawn and deletes every namespace. */
export function cleanupNetns(): void {
  cleanupAll();
}

/**
 * Connects `vm` to `host` with a veth pair. The VM end is named `vmIf` and gets `mac`; the host
 * end is returned so the caller can address it or enslave it to a bridge.
 */
export function veth(host: Netns, vm: Netns, mac: string, vmIf = 'eth0'): string {
  const hostIf = uniqueName('vh');
  const tmpVm = uniqueName('vv');
  execFileSync('ip', ['link', 'add', hostIf, 'netns', host.name, 'type', 'veth', 'peer', 'name', tmpVm, 'netns', vm.name]);
  vm.ip('link', 'set', tmpVm, 'name', vmIf);
  vm.ip('link', 'set', vmIf, 'address', mac);
  vm.ip('link', 'set', vmIf, 'up');
  host.ip('link', 'set', hostIf, 'up');
  return hostIf;
}

/** The MAC the test bridges carry (locally administered). */
export const BRIDGE_MAC = '02:6d:64:73:00:01';

/**
 * Adds a bridge like a libvirt network's to `host`, holding `addresses` (CIDR), up. It gets a MAC
 * of its own, as libvirt gives its bridges: otherwise the bridge takes the lowest of its ports'
 * MACs and changes it when a VM is plugged in, and the VMs' ARP entries for the gateway go stale
 * (connections that time out for no visible reason). No forwarding delay, no STP: ports forward at once.
 */
export function bridge(host: Netns, name: string, addresses: readonly string[]): void {
  host.ip('link', 'add', name, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0');
  host.ip('link', 'set', name, 'address', BRIDGE_MAC);
  for (const a of addresses) host.ip('addr', 'add', a, 'dev', name, ...(a.includes(':') ? ['nodad'] : []));
  host.ip('link', 'set', name, 'up');
}

/** What the test dhclient-script applies besides a DHCPv4 lease's address. */
export interface DhclientScriptOptions {
  /** The lease's first router as the default route. */
  defaultRoute?: boolean;
  /** A DHCPv6 lease's address (dhclient -6), as /128: the prefix is on-link from the router advertisement. */
  ipv6?: boolean;
}

/**
 * Writes to `file` (executable) what dhclient-script does, reduced to what a test needs, for
 * `dhclient -sf`: the DHCPv4 address, and what `opts` asks for. Debian's own script would also
 * rewrite /etc/resolv.conf (and may set the hostname), which a network namespace shares with the
 * host. Returns `file`.
 */
export function writeDhclientScript(file: string, opts: DhclientScriptOptions = {}): string {
  const route = opts.defaultRoute ? ['    set -- $new_routers', '    ip route replace default via "$1" dev "$interface"'] : [];
  const v6 = opts.ipv6 ? ['  BOUND6|RENEW6|REBIND6|REBOOT6)', '    ip -6 addr add "$new_ip6_address/128" dev "$interface" nodad', '    ;;'] : [];
  const script = ['#!/bin/sh', 'case "$reason" in', '  PREINIT) ip link set "$interface" up ;;', '  BOUND|RENEW|REBIND|REBOOT)',
    '    ip -4 addr flush dev "$interface"', '    ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"', ...route, '    ;;',
    ...v6, 'esac', 'exit 0', ''];
  fs.writeFileSync(file, script.join('\n'), { mode: 0o755 });
  return file;
}

/** Waits until `probe` returns true, polling; throws after `timeoutMs`. */
export async function waitFor(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 15000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
