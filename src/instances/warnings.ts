// Pure: what a domain's `mdserver:` metadata asks for that will not be served. The domain is
// registered either way; these are logged once per change so that its owner can fix them.

import { tagKeyProblem } from '../metadata/ec2.js';
import { overrideProblems } from '../metadata/instanceData.js';

/** One sentence per problem: ignored overrides first, then keys that are not served as tags. */
export function metadataWarnings(metadata: Readonly<Record<string, string>>): string[] {
  const out = overrideProblems(metadata);
  for (const key of Object.keys(metadata)) {
    const why = tagKeyProblem(key);
    if (why) out.push(`mdserver:${key} is not served as an instance tag: ${why}`);
  }
  return out;
}
