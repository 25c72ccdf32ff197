// One guest on a VmHost: its domain XML (TCG, direct kernel boot from a cached image, its disk a
// copy-on-write overlay, serial console to a file), defined and started through virsh, and what
// the test reads back from it over SSH.

import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BRIDGE, type VmHost } from './host.js';
import type { Image } from './image.js';
import { GiveUp, poll } from './wait.js';

let ticks = 0;
function clockTicks(): number {
  if (!ticks) ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticks;
}

export type Style = 'ec2' | 'openstack' | 'nocloud' | 'cloudstack';

/** What cloud-init's result.json names as the datasource of each style. */
export const DATASOURCE: Record<Style, RegExp> = {
  ec2: /^DataSourceEc2(Local)?\b/,
  openstack: /^DataSourceOpenStack(Local)?\b/,
  nocloud: /^DataSourceNoCloud(Net)?\b/,
  cloudstack: /^DataSourceCloudStack\b/,
};

/**
 * TCG is slow and the machine may be shared: a boot that takes 60-75 s on an idle 2-core machine
 * took 5-12 minutes while other test suites kept its load average at 7-11, so the test waits much
 * longer than that before it calls a boot stuck. MDSERVER_VM_BOOT_TIMEOUT (seconds) overrides it.
 */
export const BOOT_TIMEOUT_MS = Number(process.env['MDSERVER_VM_BOOT_TIMEOUT'] ?? 1200) * 1000;

export interface GuestSpec {
  name: string;
  image: Image;
  /** Extra devices (e.g. a NoCloud seed disk), as domain XML. */
  extraDevices?: string;
  /** Leave the SMBIOS data alone (the benchmark's local-seed boots). */
  memoryMiB?: number;
}

export function randomMac(): string {
  const b = randomBytes(3);
  return `52:54:00:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}

export class Guest {
  readonly mac = randomMac();
  readonly serialLog: string;
  readonly overlay: string;
  readonly xmlFile: string;

  constructor(
    readonly host: VmHost,
    readonly spec: GuestSpec,
  ) {
    this.serialLog = path.join(host.dir, `${spec.name}.serial.log`);
    this.overlay = path.join(host.dir, `${spec.name}.qcow2`);
    this.xmlFile = path.join(host.dir, `${spec.name}.xml`);
  }

  get name(): string {
    return this.spec.name;
  }

  /** The domain as an administrator would write it before running `mdserver sysinfo --apply`. */
  domainXml(): string {
    const img = this.spec.image;
    return `<domain type='qemu'>
  <name>${this.name}</name>
  <uuid>${randomUUID()}</uuid>
  <memory unit='MiB'>${this.spec.memoryMiB ?? 1024}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${img.kernel}</kernel>
    <initrd>${img.initrd}</initrd>
    <cmdline>root=/dev/vda rw console=ttyS0 quiet</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${this.overlay}'/>
      <target dev='vda' bus='virtio'/>
    </disk>${this.spec.extraDevices ?? ''}
    <interface type='bridge'>
      <mac address='${this.mac}'/>
      <source bridge='${BRIDGE}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='${this.serialLog}' append='on'/>
      <target port='0'/>
    </serial>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
  </devices>
</domain>
`;
  }

  /** Writes the overlay and the domain XML, applies the style's sysinfo and defines the domain. */
  async define(style: Style | null): Promise<void> {
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', this.spec.image.root, this.overlay]);
    fs.writeFileSync(this.xmlFile, this.domainXml());
    if (style) {
      const r = await this.host.mdserverCommand(['sysinfo', '--style', style, '--apply', this.xmlFile]);
      if (r.status !== 0) throw new Error(`mdserver sysinfo --style ${style} --apply failed: ${r.stderr}`);
    }
    this.host.virsh('define', this.xmlFile);
  }

  /** `virsh start`; returns the time it was issued (ms since the epoch). */
  start(): number {
    const t = Date.now();
    this.host.virsh('start', this.name);
    return t;
  }

  /** libvirt's state of the domain: running, in shutdown, shut off... */
  state(): string {
    return this.host.virshTry(['domstate', this.name]).stdout.trim();
  }

  running(): boolean {
    return this.state() === 'running';
  }

  /** The serial console's text so far. */
  serial(): string {
    return this.host.readFile(this.serialLog);
  }

  /**
   * Waits until cloud-init's last stage has finished, as its own message on the console says
   * ("Cloud-init v. X finished at ..."), counting only messages after `fromOffset` (a second boot
   * appends to the same log). Returns the time it was seen. The verdict on what cloud-init did
   * comes from SSH, not from this log.
   */
  async waitFinished(fromOffset: number, timeoutMs = BOOT_TIMEOUT_MS): Promise<number> {
    let seen = 0;
    await poll(
      `cloud-init to finish in ${this.name}`,
      () => {
        if (/Cloud-init v\. \S+ finished at/.test(this.serial().slice(fromOffset))) {
          seen = Date.now();
          return true;
        }
        const state = this.state();
        if (state !== 'running') throw new GiveUp(`${this.name} is not running any more (${state || 'no state'})`);
        return false;
      },
      timeoutMs,
      2000,
    );
    return seen;
  }

  /** Waits until SSH with the served key works at `ip`; returns the time it first did. */
  async waitSsh(ip: string, timeoutMs = 300000): Promise<number> {
    let seen = 0;
    await poll(
      `ssh to ${this.name} at ${ip}`,
      () => {
        if (this.host.ssh(ip, 'true', 20000).status === 0) {
          seen = Date.now();
          return true;
        }
        return false;
      },
      timeoutMs,
      3000,
    );
    return seen;
  }

  /** Runs a command in the guest; throws with its output when it fails. */
  sh(ip: string, command: string, timeoutMs = 60000): string {
    const r = this.host.ssh(ip, command, timeoutMs);
    if (r.status !== 0) throw new Error(`in ${this.name}: ${command}: exit ${r.status}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /**
   * Runs several commands in one SSH session (each session costs seconds of emulated CPU) and
   * returns each one's output; a command that fails makes the whole call fail, naming it.
   */
  facts(ip: string, commands: Record<string, string>, timeoutMs = 120000): Record<string, string> {
    const mark = `@@${randomBytes(4).toString('hex')}@@`;
    const script = Object.entries(commands)
      .map(([name, cmd]) => `echo '${mark} ${name}'; (${cmd}) 2>&1; echo "${mark} rc=$?"`)
      .join('\n');
    const out = this.sh(ip, script, timeoutMs);
    const facts: Record<string, string> = {};
    const re = new RegExp(`^${mark} (\\S+)\\n([\\s\\S]*?)\\n?${mark} rc=(\\d+)$`, 'gm');
    for (const m of out.matchAll(re)) {
      const [, name, text, rc] = m as unknown as [string, string, string, string];
      if (rc !== '0') throw new Error(`in ${this.name}: ${commands[name]}: exit ${rc}\n${text}`);
      facts[name] = text.trim();
    }
    for (const name of Object.keys(commands)) if (!(name in facts)) throw new Error(`in ${this.name}: no output for ${name}:\n${out}`);
    return facts;
  }

  /** Shuts the guest down from inside and waits until libvirt sees it off; destroys it if it hangs. */
  async shutdown(ip: string, timeoutMs = 300000): Promise<void> {
    this.host.ssh(ip, 'sudo systemctl poweroff', 15000);
    try {
      // Only "shut off" will start again; "in shutdown" is on the way.
      await poll(`${this.name} to power off`, () => this.state() === 'shut off', timeoutMs, 2000);
    } catch (e) {
      this.host.virshTry(['destroy', this.name]);
      throw e;
    }
  }

  /**
   * CPU seconds (user + system) that qemu has spent on this guest so far, from /proc. Under TCG
   * this is the guest's own work, and unlike wall time it hardly changes with what else the
   * machine is doing; waits (a DHCP timeout, a slow server) cost wall time but almost no CPU, so
   * the benchmark reports both.
   */
  cpuSeconds(): number {
    const pidFile = path.join(this.host.dir, 'run', 'libvirt', 'qemu', `${this.name}.pid`);
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name: state is field 3, utime 14 and stime 15 (proc(5)).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks();
  }

  /** Stops the guest at once and removes its definition (the overlay goes with the host's tree). */
  destroy(): void {
    if (this.state() !== 'shut off') this.host.virshTry(['destroy', this.name], 30000);
    this.host.virshTry(['undefine', this.name], 30000);
  }
}
