// Pure: which template files to try for an instance: only files that are its own.
//
// Tenants may choose their domain's name and its `mdserver:` metadata, so neither may reach
// another instance's template. A template is an instance's own when it is named after its uuid or
// its MAC (the host assigns both, and no two instances share either), or after its name while no
// other registered instance answers to that file name (by uuid, name or MAC, with any suffix). A
// `userdata_prefix` names a shared template in the prefix directory, never a per-instance one.

import path from 'node:path';
import type { Config } from '../config/index.js';
import { MdsError } from '../errors.js';
import { isPrefixName } from '../names.js';
import type { Instance, Store } from '../store/store.js';

export interface Candidates {
  paths: string[];
  /** True when the domain named its own template: then there is no fallback (missing is 404). */
  explicit: boolean;
  /**
   * Files the old rules would have tried that these do not, each with why: a name another
   * instance also answers to, or a prefix template still in md_server's flat layout. Worth a
   * warning when one exists.
   */
  passedOver: { path: string; why: string }[];
}

/**
 * The other registered instances, looked up by each of the keys templates are named after, and the
 * store's generation, which moves with every change to them (a choice made earlier is then redone).
 */
export type InstanceLookup = Pick<Store, 'byUuid' | 'byName' | 'byMac' | 'generation'>;

/** The settings template choice reads. */
export type TemplateSettings = Pick<Config['mdserver'], 'userdataDir' | 'userdataSuffixes' | 'userdataPrefixDir' | 'legacyPrefixes'>;

/** A file name part that cannot leave the userdata directory. */
function safePart(s: string): boolean {
  return s !== '' && s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\\') && !/[\u0000-\u001f\u007f]/.test(s);
}

/** A suffix from the configuration must not lead out of the directory either. */
function within(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** Another instance than `self` that answers to the file name `file`, with one of the suffixes. */
function otherClaimant(file: string, suffixes: readonly string[], self: Instance, others: InstanceLookup): Instance | undefined {
  for (const sfx of suffixes) {
    if (!file.endsWith(sfx) || file.length === sfx.length) continue;
    const key = file.slice(0, file.length - sfx.length);
    for (const other of [others.byUuid(key), others.byName(key), others.byMac(key)]) {
      if (other && other.uuid !== self.uuid) return other;
    }
  }
  return undefined;
}

function prefixCandidates(m: TemplateSettings, inst: Instance, prefix: string, others: InstanceLookup): Candidates {
  if (!isPrefixName(prefix)) {
    throw new MdsError('BAD_USERDATA_PREFIX', `userdata_prefix of domain ${inst.name} is not a plain file name`);
  }
  const paths = m.userdataSuffixes.map((sfx) => path.join(m.userdataDir, m.userdataPrefixDir, prefix + sfx));
  const passedOver: Candidates['passedOver'] = [];
  const legacy = m.legacyPrefixes.includes(prefix);
  for (const sfx of m.userdataSuffixes) {
    const p = path.join(m.userdataDir, prefix + sfx);
    // Even a listed prefix never reaches a template that another instance answers to.
    const claimant = legacy ? otherClaimant(prefix + sfx, m.userdataSuffixes, inst, others) : undefined;
    if (legacy && !claimant) paths.push(p);
    else if (claimant) passedOver.push({ path: p, why: `instance ${claimant.name} (${claimant.uuid}) answers to that name` });
    else passedOver.push({ path: p, why: `md_server's flat layout: move it to ${m.userdataPrefixDir}/, or list "${prefix}" in [mdserver] legacy_prefixes` });
  }
  return { paths: paths.filter((p) => within(m.userdataDir, p)), explicit: true, passedOver };
}

/**
 * A domain's `userdata_prefix` metadata names the template (with each suffix) in the prefix
 * directory, and nothing else is tried. Otherwise: `<uuid>`, `<name>`, `<MAC>`, each with every
 * suffix, a name only while no other instance answers to that file name.
 */
export function templateCandidates(m: TemplateSettings, inst: Instance, others: InstanceLookup): Candidates {
  const prefix = inst.metadata['userdata_prefix'];
  if (prefix !== undefined) return prefixCandidates(m, inst, prefix, others);
  const paths: string[] = [];
  const passedOver: Candidates['passedOver'] = [];
  for (const [base, own] of [[inst.uuid, true], [inst.name, false], [inst.mac, true]] as const) {
    if (!safePart(base)) continue;
    for (const sfx of m.userdataSuffixes) {
      const file = base + sfx;
      const p = path.join(m.userdataDir, file);
      const claimant = own ? undefined : otherClaimant(file, m.userdataSuffixes, inst, others);
      if (claimant) passedOver.push({ path: p, why: `instance ${claimant.name} (${claimant.uuid}) answers to that name too` });
      else if (!paths.includes(p) && within(m.userdataDir, p)) paths.push(p);
    }
  }
  return { paths, explicit: false, passedOver };
}
