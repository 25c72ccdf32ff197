// Pure: which template files to try for an instance, in md_server's order.

import path from 'node:path';
import { MdsError } from '../errors.js';
import type { Instance } from '../store/store.js';

export interface Candidates {
  paths: string[];
  /** True when the domain named its own template: then there is no fallback (missing is 404). */
  explicit: boolean;
}

/** A file name part that cannot leave the userdata directory. */
function safePart(s: string): boolean {
  return s !== '' && s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\\') && !/[\u0000-\u001f\u007f]/.test(s);
}

function within(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/**
 * A domain's `userdata_prefix` metadata names the template (with each suffix) and nothing else is
 * tried; otherwise `<name>` then `<MAC>`, each with every suffix. A prefix that could escape the
 * directory is refused.
 */
export function templateCandidates(dir: string, suffixes: readonly string[], inst: Instance): Candidates {
  const prefix = inst.metadata['userdata_prefix'];
  const build = (base: string): string[] =>
    suffixes.map((sfx) => path.join(dir, base + sfx)).filter((p) => within(dir, p));
  if (prefix !== undefined) {
    if (!safePart(prefix) || prefix.includes('..')) {
      throw new MdsError('BAD_USERDATA_PREFIX', `userdata_prefix of domain ${inst.name} is not a plain file name`);
    }
    return { paths: build(prefix), explicit: true };
  }
  const paths: string[] = [];
  for (const base of [inst.name, inst.mac]) if (safePart(base)) paths.push(...build(base));
  return { paths, explicit: false };
}
