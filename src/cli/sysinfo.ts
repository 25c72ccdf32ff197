// `mdserver sysinfo`: prints the libvirt elements that make cloud-init in a domain find mdserver
// in the chosen style, and the clean-traffic filter for its metadata interface (--filter), or
// writes them into a domain XML file in place (--apply).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { writeAtomic } from '../atomic.js';
import { describe } from '../errors.js';
import type { InterfaceMatch } from '../libvirt/domain.js';
import { addCleanTraffic, CLEAN_TRAFFIC } from '../libvirt/filterref.js';
import { applySysinfo, DEFAULT_NOCLOUD_URL, planSysinfo, STYLES, sysinfoSnippet, type Style, type SysinfoPlan } from '../libvirt/sysinfo.js';

/** Where mdserver looks for the metadata interface unless told otherwise: the configuration's defaults. */
const DEFAULT_MATCH: InterfaceMatch = { network: 'mds', bridge: 'br-mds' };

export const SYSINFO_USAGE = `Usage: mdserver sysinfo [--style ec2|openstack|nocloud|cloudstack] [--filter] [--apply] [--url URL]
                        [--network NAME] [--bridge NAME] <domain.xml | domain name>

--style prints the <sysinfo> and <os><smbios mode='sysinfo'/></os> elements that make cloud-init
in the domain find mdserver:
  ec2        pretend to be AWS: SMBIOS serial and uuid equal and starting with "ec2" (this
             changes the domain uuid, so the domain must be defined anew)
  openstack  SMBIOS product "OpenStack Nova": the OpenStack metadata format
  nocloud    SMBIOS serial "ds=nocloud-net;s=${DEFAULT_NOCLOUD_URL}": the NoCloud seed
  cloudstack SMBIOS product "CloudStack KVM Hypervisor": cloud-init's CloudStack datasource,
             which finds mdserver as data-server, its DHCP server or its gateway ([cloudstack])
--filter prints <filterref filter='clean-traffic'/> for the domain's interface on the metadata
network (--network, default ${DEFAULT_MATCH.network}, or --bridge, default ${DEFAULT_MATCH.bridge}): libvirt then drops the
VM's frames whose MAC, IP or ARP data are not its own, so that no VM can copy another's MAC and
address to read its data (see [mdserver] require_filter).
With --apply, rewrites the domain XML file in place, changing nothing else in it. A domain name
instead of a file is read with "virsh dumpxml --inactive". --url sets the NoCloud seed URL.`;

export interface Io {
  out(s: string): void;
  err(s: string): void;
  /** `virsh dumpxml --inactive <name>`; returns the XML or throws saying why not. */
  dumpxml(name: string): string;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  dumpxml(name) {
    const r = spawnSync('virsh', ['dumpxml', '--inactive', '--domain', name], { encoding: 'utf8', timeout: 30000 });
    if (r.error) throw new Error(`cannot run virsh: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`virsh dumpxml ${name} failed: ${r.stderr.trim()}`);
    return r.stdout;
  },
};

interface Args {
  style: Style | null;
  filter: boolean;
  apply: boolean;
  url: string | undefined;
  match: InterfaceMatch;
  target: string;
}

function parseArgs(argv: string[]): Args | string {
  const opts: Record<string, string | undefined> = {};
  const flags = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (['--style', '--url', '--network', '--bridge'].includes(flag)) opts[flag] = inline ?? argv[++i];
    else if ((flag === '--apply' || flag === '--filter') && inline === undefined) flags.add(flag);
    else if (a.startsWith('-') && a !== '-') return `unknown option ${a}`;
    else positional.push(a);
  }
  const style = opts['--style'];
  if (style === undefined && !flags.has('--filter')) return '--style or --filter is required';
  if (style !== undefined && !(STYLES as readonly string[]).includes(style)) return `unknown style "${style}" (expected ${STYLES.join(', ')})`;
  if (positional.length !== 1) return 'expected one domain XML file or domain name';
  return {
    style: (style ?? null) as Style | null,
    filter: flags.has('--filter'),
    apply: flags.has('--apply'),
    url: opts['--url'],
    match: { network: opts['--network'] ?? DEFAULT_MATCH.network, bridge: opts['--bridge'] ?? DEFAULT_MATCH.bridge },
    target: positional[0] as string,
  };
}

/** A file is anything that exists, or anything that looks like a path; else a domain name. */
function isFileTarget(target: string): boolean {
  return fs.existsSync(target) || target.includes('/') || target.endsWith('.xml');
}

/** Replaces `file` atomically, keeping its permissions: a crash leaves the old or the new text. */
function writeInPlace(file: string, text: string): void {
  writeAtomic(file, text, fs.statSync(file).mode & 0o7777);
}

/** What to do after editing the XML in `file` (the domain's own definition when null). */
function nextSteps(plan: SysinfoPlan | null, filter: boolean, name: string, file: string | null): string[] {
  const xml = file ?? `${name}.xml`;
  const lines: string[] = [];
  if (plan?.style === 'ec2' && plan.oldUuid !== plan.uuid) {
    lines.push(
      `libvirt cannot change the uuid of a defined domain, so define ${name} anew under ${plan.uuid}:`,
      ...(file ? [] : [`  virsh dumpxml --inactive ${name} > ${xml}   (then edit it, or use --apply on it)`]),
      `  virsh undefine ${name}   (add --nvram for a UEFI domain; its disks are kept)`,
      `  virsh define ${xml}`,
      `  mdserver instances rekey ${name} --uuid ${plan.uuid}`,
      'The last step, before the domain next starts, moves its mdserver record to the new uuid, so it keeps its',
      'address and instance id; without it, mdserver refuses the upload of a domain under an instance\'s name',
      'but not its uuid, as a new VM must not take over an old one\'s identity.',
    );
  } else {
    lines.push(file ? `Then: virsh define ${xml}` : `Edit the definition with: virsh edit ${name}`);
  }
  lines.push('The guest sees the change when the domain is next started: shut it down and start it (a reboot inside the guest is not enough).');
  if (filter) lines.push("mdserver records the filter from the domain's next upload, which the hook makes when it starts.");
  return lines;
}

/** Without --apply: the elements to add, on stdout, and where they go, on stderr. */
function printSnippets(args: Args, plan: SysinfoPlan | null, name: string, file: string | null, io: Io): void {
  const where: string[] = [];
  if (plan) {
    io.out(sysinfoSnippet(plan));
    where.push(`Put <sysinfo> in the definition of ${plan.name || 'the domain'} next to <os>, and <smbios mode='sysinfo'/> inside its <os>` +
      `${plan.style === 'ec2' ? ', with the domain <uuid> shown' : ''}.`);
  }
  if (args.filter) {
    io.out(`<filterref filter='${CLEAN_TRAFFIC}'/>\n`);
    where.push(`Put <filterref> inside the <interface> whose source is network "${args.match.network}" (or bridge "${args.match.bridge}").`);
  }
  io.err(`${where.join('\n')}\n(Or use --apply on an XML file.)\n${nextSteps(plan, args.filter, name, file).join('\n')}\n`);
}

/** With --apply: the edited document written in place; what was done, on stdout. */
function applyEdits(args: Args, xml: string, plan: SysinfoPlan | null, name: string, io: Io): void {
  const done: string[] = [];
  let updated = xml;
  if (plan) {
    const next = applySysinfo(updated, plan);
    done.push(next === updated ? `already has the ${plan.style} sysinfo` : `set the ${plan.style} sysinfo`);
    updated = next;
  }
  if (args.filter) {
    const next = addCleanTraffic(updated, args.match);
    done.push(next === updated ? `its interface already has the ${CLEAN_TRAFFIC} filter` : `added <filterref filter='${CLEAN_TRAFFIC}'/> to its interface on the metadata network`);
    updated = next;
  }
  if (updated === xml) {
    io.out(`${args.target}: ${done.join('; ')}; nothing changed\n`);
    return;
  }
  writeInPlace(args.target, updated);
  io.out(`${args.target}: ${done.join('; ')}\n${nextSteps(plan, args.filter, name, args.target).join('\n')}\n`);
}

export function sysinfoCommand(argv: string[], io: Io = defaultIo): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(SYSINFO_USAGE + '\n');
    return 0;
  }
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    io.err(`mdserver sysinfo: ${args}\n${SYSINFO_USAGE}\n`);
    return 2;
  }
  const fileTarget = isFileTarget(args.target);
  if (args.apply && !fileTarget) {
    io.err(
      `mdserver sysinfo: --apply rewrites a file; for domain ${args.target} run\n` +
        `  virsh dumpxml --inactive ${args.target} > ${args.target}.xml\nand apply to ${args.target}.xml\n`,
    );
    return 2;
  }
  try {
    const xml = fileTarget ? fs.readFileSync(args.target, 'utf8') : io.dumpxml(args.target);
    const plan = args.style === null ? null : planSysinfo(xml, args.style, {
      ...(args.url !== undefined ? { nocloudUrl: args.url } : {}),
      randomUuid: randomUUID,
    });
    for (const w of plan?.warnings ?? []) io.err(`warning: ${w}\n`);
    const name = plan?.name || (fileTarget ? '<name>' : args.target);
    if (args.apply) applyEdits(args, xml, plan, name, io);
    else printSnippets(args, plan, name, fileTarget ? args.target : null, io);
    return 0;
  } catch (e) {
    io.err(`mdserver sysinfo: ${describe(e)}\n`);
    return 1;
  }
}
