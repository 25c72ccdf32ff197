// Pure: the SMBIOS system information that makes cloud-init inside a domain pick one way of
// finding mdserver, as libvirt `<sysinfo>` and `<os><smbios mode='sysinfo'/>` elements, and the
// in-place rewrite of a domain XML document to carry them. The rewrite splices the text: every
// byte outside the elements it changes stays as it was.

import { MdsError } from '../errors.js';
import { canonicalUuid, UUID } from '../ids.js';
import { appendChildren, childIndent, indentStep, lineIndent, removeElement, splice, type Edit } from './xmledit.js';
import { child, escapeText, scanXml, textOf, type XmlElement } from './xmlspan.js';

export const STYLES = ['ec2', 'openstack', 'nocloud', 'cloudstack'] as const;
export type Style = (typeof STYLES)[number];

/** What CloudStack's KVM hosts put in the SMBIOS product name. */
export const CLOUDSTACK_PRODUCT = 'CloudStack KVM Hypervisor';

export const DEFAULT_NOCLOUD_URL = 'http://169.254.169.254/nocloud/';

/** Values that make cloud-init (and ds-identify) think of another style; removed when seen. */
const OPENSTACK_PRODUCTS = /^OpenStack (Nova|Compute)$/;
const OPENSTACK_VENDOR = 'OpenStack Foundation';

export interface SysinfoPlan {
  readonly style: Style;
  /** Things the user should know before using the result. */
  readonly warnings: readonly string[];
  readonly name: string;
  /** The domain uuid before and after: they differ only for the ec2 style. */
  readonly oldUuid: string | null;
  readonly uuid: string;
  /** `<system>` entries to set, in order. */
  readonly set: readonly (readonly [string, string])[];
  /** `<system>` entries to drop when their current value matches. */
  readonly drop: readonly (readonly [string, (value: string) => boolean])[];
}

export interface PlanOptions {
  /** Where the NoCloud seed is (the serial's `s=`); must end in `/` for cloud-init 22.x. */
  nocloudUrl?: string;
  /** For a domain without `<uuid>` (libvirt would make one up), the ec2 style needs one now. */
  randomUuid?: () => string;
}

function bad(message: string): MdsError {
  return new MdsError('BAD_DOMAIN_XML', message);
}

function domainRoot(xml: string): XmlElement {
  const root = scanXml(xml);
  if (root.name !== 'domain') throw bad(`the document root is <${root.name}>, not <domain>`);
  return root;
}

function normaliseUuid(raw: string): string {
  const uuid = canonicalUuid(raw);
  if (uuid === null) throw bad(`the domain <uuid> "${raw.trim().slice(0, 64)}" is not a UUID`);
  return uuid;
}

/**
 * The ec2 uuid for a domain: its own when it already starts with `ec2`, else the same uuid with
 * its first three digits replaced (md_server's advice), so that running the helper again gives
 * the same answer and the new uuid still says which domain it came from.
 */
export function ec2Uuid(uuid: string): string {
  return uuid.startsWith('ec2') ? uuid : `ec2${uuid.slice(3)}`;
}

/**
 * Whether current cloud-init would take this system uuid for AWS: it accepts a uuid starting
 * with ec2 as written or with its first three fields byte-swapped (SMBIOS stores them so).
 */
export function looksLikeEc2(uuid: string): boolean {
  const hex = uuid.toLowerCase().replace(/-/g, '');
  const swapped = hex.slice(6, 8) + hex.slice(4, 6) + hex.slice(2, 4) + hex.slice(0, 2);
  return hex.startsWith('ec2') || swapped.startsWith('ec2');
}


export function planSysinfo(xml: string, style: Style, opts: PlanOptions = {}): SysinfoPlan {
  const root = domainRoot(xml);
  const nameEl = child(root, 'name');
  const name = (nameEl && textOf(xml, nameEl)?.trim()) || '';
  const uuidEl = child(root, 'uuid');
  const rawUuid = uuidEl ? textOf(xml, uuidEl) : null;
  const oldUuid = rawUuid === null || rawUuid.trim() === '' ? null : normaliseUuid(rawUuid);
  const isOpenStack = (v: string): boolean => OPENSTACK_PRODUCTS.test(v.trim());
  const isOpenStackVendor = (v: string): boolean => v.trim() === OPENSTACK_VENDOR;
  const warnings: string[] = [];
  if (style !== 'ec2' && oldUuid && looksLikeEc2(oldUuid)) {
    warnings.push(
      `the domain uuid ${oldUuid} looks like an EC2 one: cloud-init 24.2 and later will still take the VM for AWS ` +
        'and try the EC2 datasource first; give the domain a fresh uuid to avoid that',
    );
  }
  switch (style) {
    case 'ec2': {
      let uuid: string;
      if (oldUuid) {
        uuid = ec2Uuid(oldUuid);
        if (uuid !== oldUuid) {
          warnings.push(
            `libvirt requires the SMBIOS uuid to be the domain uuid, so the domain uuid changes from ${oldUuid} to ${uuid}: ` +
              'the domain has to be defined anew under it (undefine it, keeping its disks, then define the new XML)',
          );
        }
      }
      else {
        const fresh = (opts.randomUuid ?? (() => { throw bad('the domain has no <uuid>'); }))().toLowerCase();
        if (!UUID.test(fresh)) throw bad(`not a UUID: ${fresh}`);
        uuid = ec2Uuid(fresh);
      }
      // cloud-init 22.4 wants the DMI uuid to start with ec2 and equal the serial; current
      // releases accept the uuid alone, so both are set and both generations agree.
      return {
        style, warnings, name, oldUuid, uuid,
        set: [['serial', uuid], ['uuid', uuid]],
        drop: [['product', isOpenStack], ['manufacturer', isOpenStackVendor]],
      };
    }
    case 'openstack':
      return {
        style, warnings, name, oldUuid, uuid: oldUuid ?? '',
        set: [['manufacturer', OPENSTACK_VENDOR], ['product', 'OpenStack Nova']],
        drop: [['serial', (v) => /^(ds=nocloud|ec2)/i.test(v.trim())]],
      };
    case 'cloudstack':
      // ds-identify selects CloudStack when the DMI product name starts with "CloudStack"; the
      // product replaces another style's, and nothing else of the domain changes.
      return { style, warnings, name, oldUuid, uuid: oldUuid ?? '', set: [['product', CLOUDSTACK_PRODUCT]], drop: [['manufacturer', isOpenStackVendor]] };
    case 'nocloud': {
      const url = opts.nocloudUrl ?? DEFAULT_NOCLOUD_URL;
      if (!/^https?:\/\/[^\s;]+\/$/.test(url)) {
        throw new MdsError('BAD_REQUEST', `the NoCloud URL must be http(s), without spaces or ";", and end in "/": ${url}`);
      }
      return {
        style, warnings, name, oldUuid, uuid: oldUuid ?? '',
        // The `nocloud-net` spelling: cloud-init before 23.2 knows no other for a network seed.
        set: [['serial', `ds=nocloud-net;s=${url}`]],
        drop: [['product', isOpenStack], ['manufacturer', isOpenStackVendor]],
      };
    }
  }
}

/** The elements for the plan as they would appear in a domain definition, indented by `indent`. */
export function sysinfoSnippet(plan: SysinfoPlan, indent = '  '): string {
  const i2 = indent + '  ';
  const i3 = i2 + '  ';
  const lines: string[] = [];
  if (plan.style === 'ec2') lines.push(`${indent}<uuid>${plan.uuid}</uuid>`);
  lines.push(`${indent}<sysinfo type='smbios'>`, `${i2}<system>`);
  for (const [k, v] of plan.set) lines.push(`${i3}<entry name='${k}'>${escapeText(v)}</entry>`);
  lines.push(`${i2}</system>`, `${indent}</sysinfo>`, `${indent}<os>`, `${i2}<smbios mode='sysinfo'/>`, `${indent}</os>`);
  return lines.join('\n') + '\n';
}

function entryName(e: XmlElement): string {
  return e.attrs.get('name') ?? '';
}

/**
 * Rewrites `xml` to carry `plan`: the domain uuid (ec2 style), the `<system>` entries of the
 * smbios `<sysinfo>` (created when missing), and `<smbios mode='sysinfo'/>` in `<os>`. Entries
 * the plan does not name, other `<sysinfo>` blocks and everything else are left untouched.
 */
export function applySysinfo(xml: string, plan: SysinfoPlan): string {
  const root = domainRoot(xml);
  const step = indentStep(xml, root);
  const os = child(root, 'os');
  if (!os) throw bad('the domain has no <os> element');
  return splice(xml, [
    ...uuidEdits(xml, root, step, plan),
    ...sysinfoEdits(xml, root, os, step, plan),
    ...smbiosEdits(xml, os, step),
  ]);
}

/** The domain uuid, for the ec2 style (libvirt insists that the sysinfo uuid equal it). */
function uuidEdits(xml: string, root: XmlElement, step: string, plan: SysinfoPlan): Edit[] {
  if (plan.style !== 'ec2' || plan.uuid === plan.oldUuid) return [];
  const uuidEl = child(root, 'uuid');
  const element = `<uuid>${plan.uuid}</uuid>`;
  if (uuidEl && !uuidEl.selfClosing) return [{ start: uuidEl.openEnd, end: uuidEl.closeStart, text: plan.uuid }];
  if (uuidEl) return [{ start: uuidEl.start, end: uuidEl.end, text: element }];
  // libvirt writes <uuid> right after <name>.
  const nameEl = child(root, 'name');
  const at = nameEl ? nameEl.end : root.openEnd;
  const ind = (nameEl && lineIndent(xml, nameEl.start)) ?? step;
  return [{ start: at, end: at, text: `\n${ind}${element}` }];
}

function entryLines(indent: string, entries: readonly (readonly [string, string])[]): string[] {
  return entries.map(([k, v]) => `${indent}<entry name='${k}'>${escapeText(v)}</entry>`);
}

/** The `<system>` entries of `<sysinfo type='smbios'>`, creating whatever is missing. */
function sysinfoEdits(xml: string, root: XmlElement, os: XmlElement, step: string, plan: SysinfoPlan): Edit[] {
  const sysinfo = child(root, 'sysinfo', (c) => (c.attrs.get('type') ?? 'smbios') === 'smbios');
  if (!sysinfo) return [newSysinfoBlock(xml, root, os, step, plan)];
  const system = child(sysinfo, 'system');
  if (!system) return [newSystemBlock(xml, sysinfo, step, plan)];
  return systemEntryEdits(xml, system, step, plan);
}

/** A whole new `<sysinfo>` block, just before `<os>`, where libvirt itself writes it. */
function newSysinfoBlock(xml: string, root: XmlElement, os: XmlElement, step: string, plan: SysinfoPlan): Edit {
  const osIndent = lineIndent(xml, os.start);
  const ind = osIndent ?? step;
  const block = [
    `${ind}<sysinfo type='smbios'>`,
    `${ind}${step}<system>`,
    ...entryLines(`${ind}${step}${step}`, plan.set),
    `${ind}${step}</system>`,
    `${ind}</sysinfo>`,
  ];
  if (osIndent !== null) {
    const lineStart = os.start - osIndent.length;
    return { start: lineStart, end: lineStart, text: block.join('\n') + '\n' };
  }
  return appendChildren(xml, root, block);
}

/** A new `<system>` in an existing `<sysinfo>`: after `<bios>`, as libvirt orders them. */
function newSystemBlock(xml: string, sysinfo: XmlElement, step: string, plan: SysinfoPlan): Edit {
  const sysIndent = childIndent(xml, sysinfo, step);
  const block = [`${sysIndent}<system>`, ...entryLines(sysIndent + step, plan.set), `${sysIndent}</system>`];
  const bios = child(sysinfo, 'bios');
  if (bios && lineIndent(xml, bios.start) !== null) {
    const nl = xml.indexOf('\n', bios.end);
    const at = nl < 0 ? bios.end : nl + 1;
    return { start: at, end: at, text: block.join('\n') + '\n' };
  }
  const firstChild = sysinfo.children[0];
  const firstIndent = firstChild ? lineIndent(xml, firstChild.start) : null;
  if (firstChild && firstIndent !== null) {
    const lineStart = firstChild.start - firstIndent.length;
    return { start: lineStart, end: lineStart, text: block.join('\n') + '\n' };
  }
  return appendChildren(xml, sysinfo, block);
}

/** Entries of an existing `<system>`: values set, duplicates and stale entries removed. */
function systemEntryEdits(xml: string, system: XmlElement, step: string, plan: SysinfoPlan): Edit[] {
  const edits: Edit[] = [];
  const missing: (readonly [string, string])[] = [];
  for (const [k, v] of plan.set) {
    const [first, ...dups] = system.children.filter((c) => c.name === 'entry' && entryName(c) === k);
    if (!first) {
      missing.push([k, v]);
      continue;
    }
    if (textOf(xml, first) !== v) {
      edits.push(first.selfClosing
        ? { start: first.start, end: first.end, text: `<entry name='${k}'>${escapeText(v)}</entry>` }
        : { start: first.openEnd, end: first.closeStart, text: escapeText(v) });
    }
    for (const d of dups) edits.push(removeElement(xml, d));
  }
  for (const [k, pred] of plan.drop) {
    for (const c of system.children) {
      if (c.name === 'entry' && entryName(c) === k && pred(textOf(xml, c) ?? '')) edits.push(removeElement(xml, c));
    }
  }
  if (missing.length > 0) edits.push(appendChildren(xml, system, entryLines(childIndent(xml, system, step), missing)));
  return edits;
}

/** `<os><smbios mode='sysinfo'/>`: without it libvirt ignores `<sysinfo>` for the guest. */
function smbiosEdits(xml: string, os: XmlElement, step: string): Edit[] {
  const smbios = child(os, 'smbios');
  if (!smbios) return [appendChildren(xml, os, [`${childIndent(xml, os, step)}<smbios mode='sysinfo'/>`])];
  if (smbios.attrs.get('mode') !== 'sysinfo') return [{ start: smbios.start, end: smbios.end, text: `<smbios mode='sysinfo'/>` }];
  return [];
}
