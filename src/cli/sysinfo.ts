// `mdserver sysinfo`: prints the libvirt elements that make cloud-init in a domain find mdserver
// in the chosen style, or writes them into a domain XML file in place (--apply).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { writeAtomic } from '../atomic.js';
import { describe } from '../errors.js';
import { applySysinfo, DEFAULT_NOCLOUD_URL, planSysinfo, STYLES, sysinfoSnippet, type Style, type SysinfoPlan } from '../libvirt/sysinfo.js';

export const SYSINFO_USAGE = `Usage: mdserver sysinfo --style ec2|openstack|nocloud [--apply] [--url URL] <domain.xml | domain name>

Prints the <sysinfo> and <os><smbios mode='sysinfo'/></os> elements that make cloud-init in the
domain find mdserver:
  ec2        pretend to be AWS: SMBIOS serial and uuid equal and starting with "ec2" (this
             changes the domain uuid, so the domain must be defined anew)
  openstack  SMBIOS product "OpenStack Nova": the OpenStack metadata format
  nocloud    SMBIOS serial "ds=nocloud-net;s=${DEFAULT_NOCLOUD_URL}": the NoCloud seed
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
  style: Style;
  apply: boolean;
  url: string | undefined;
  target: string;
}

function parseArgs(argv: string[]): Args | string {
  let style: string | undefined;
  let apply = false;
  let url: string | undefined;
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    if (flag === '--style') style = value();
    else if (flag === '--url') url = value();
    else if (flag === '--apply' && inline === undefined) apply = true;
    else if (a.startsWith('-') && a !== '-') return `unknown option ${a}`;
    else positional.push(a);
  }
  if (style === undefined) return '--style is required';
  if (!(STYLES as readonly string[]).includes(style)) return `unknown style "${style}" (expected ${STYLES.join(', ')})`;
  if (positional.length !== 1) return 'expected one domain XML file or domain name';
  return { style: style as Style, apply, url, target: positional[0] as string };
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
function nextSteps(plan: SysinfoPlan, file: string | null): string[] {
  const name = plan.name || '<name>';
  const xml = file ?? `${name}.xml`;
  const lines: string[] = [];
  if (plan.style === 'ec2' && plan.oldUuid !== plan.uuid) {
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
  lines.push('The guest sees the new SMBIOS data when the domain is next started: shut it down and start it (a reboot inside the guest is not enough).');
  return lines;
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
    const plan = planSysinfo(xml, args.style, {
      ...(args.url !== undefined ? { nocloudUrl: args.url } : {}),
      randomUuid: randomUUID,
    });
    for (const w of plan.warnings) io.err(`warning: ${w}\n`);
    if (!args.apply) {
      io.out(sysinfoSnippet(plan));
      io.err(
        `Put <sysinfo> in the definition of ${plan.name || 'the domain'} next to <os>, and <smbios mode='sysinfo'/> inside its <os>` +
          `${plan.style === 'ec2' ? ', with the domain <uuid> shown' : ''} (or use --apply on an XML file).\n` +
          nextSteps(plan, fileTarget ? args.target : null).join('\n') + '\n',
      );
      return 0;
    }
    const updated = applySysinfo(xml, plan);
    if (updated === xml) {
      io.out(`${args.target} already has the ${args.style} sysinfo; nothing changed\n`);
      return 0;
    }
    writeInPlace(args.target, updated);
    io.out(`${args.target}: set the ${args.style} sysinfo\n${nextSteps(plan, args.target).join('\n')}\n`);
    return 0;
  } catch (e) {
    io.err(`mdserver sysinfo: ${describe(e)}\n`);
    return 1;
  }
}
