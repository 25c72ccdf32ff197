// A problem found in the configuration, naming the file, section, key and value, so that one run
// of `mdserver --check-config` can show every problem with enough to find and fix each.

export interface ConfigProblem {
  file: string;
  /** Empty for a problem with a whole file (one that cannot be read). */
  section: string;
  key: string;
  value: string;
  message: string;
}

export function formatProblem(p: ConfigProblem): string {
  if (!p.section) return `${p.file}: ${p.message}`;
  return `${p.file}: [${p.section}] ${p.key} = ${JSON.stringify(p.value)}: ${p.message}`;
}
