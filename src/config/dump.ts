// The resolved configuration as `section.key=value` lines (`mdserver --check-config` and the
// host's /service/config), with secrets hidden as md_server hid them.

import type { Config } from './schema.js';
import { findSetting } from './settings.js';

/** Free-form sections whose values are never shown: keys, and what templates may be given. */
const SECRET_SECTIONS = new Set(['public-keys', 'template-data']);

export function isSecret(id: string): boolean {
  const [section = '', key = ''] = id.split('.', 2);
  if (SECRET_SECTIONS.has(section)) return true;
  // A password under a misspelt section is not a known setting, and still a secret.
  return findSetting(id)?.setting.secret === true || key === 'password';
}

/** Every effective value, sorted, secrets replaced. */
export function dumpConfig(cfg: Config): string[] {
  return [...cfg.values]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([id, value]) => `${id}=${isSecret(id) ? '<hidden>' : value}`);
}
