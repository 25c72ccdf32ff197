// Loads and validates the configuration: the entry point the rest of mdserver uses. (Pure code
// that only needs the per-instance value rules imports `instanceValues.ts` itself.)

import { MdsError } from '../errors.js';
import { readConfigFiles } from './ini.js';
import { buildConfig } from './build.js';
import { formatProblem, type ConfigProblem } from './problems.js';
import type { Config } from './schema.js';

export type { Config, PublicKey, EntryKind, TokenMode, NetworkMode } from './schema.js';
export { DEFAULT_CONFIG_FILE } from './schema.js';
export { adminSocketPath } from './parsers.js';
export { dumpConfig } from './dump.js';
export { formatProblem, type ConfigProblem } from './problems.js';
export { SETTING_LIST, settingValue, type SettingEntry, type Unit } from './settings.js';

export class ConfigError extends MdsError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super('CONFIG_INVALID', `invalid configuration:\n${problems.map((p) => '  ' + formatProblem(p)).join('\n')}`);
    this.problems = problems;
  }
}

/**
 * How every long-lived part reads the configuration: call it when the value is needed. A reload
 * swaps what it returns, so parts that derive caches from it compare the object they got last time.
 */
export type ConfigSource = () => Config;

export interface LoadedConfig {
  config: Config;
  warnings: string[];
}

/** Reads `file` and its includes; throws ConfigError listing every problem found. */
export function loadConfig(file: string): LoadedConfig {
  const read = readConfigFiles(file);
  const readProblems: ConfigProblem[] = read.problems.map((p) => ({
    file: p.file, section: '', key: '', value: '', message: p.message,
  }));
  if (read.files.length === 0) throw new ConfigError(readProblems);
  const built = buildConfig(read.raw, read.files, file);
  const problems = [...readProblems, ...built.problems];
  if (problems.length > 0 || !built.config) throw new ConfigError(problems);
  return { config: built.config, warnings: built.warnings };
}
