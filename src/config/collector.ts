// The effective text of every setting (default, or the last file to set it) with the file it came
// from, and the problems and warnings found while validating them, each naming that file.

import type { RawConfig } from './ini.js';
import type { ParseContext } from './parsers.js';
import type { ConfigProblem } from './problems.js';
import { LEGACY_KEYS, OPEN_SECTIONS, SETTING_LIST, defaultValue, findSetting } from './settings.js';

const DEFAULT_ORIGIN = '(default)';

export class Collector {
  readonly problems: ConfigProblem[] = [];
  readonly warnings: string[] = [];
  /** `section.key` -> text, for `_config_items_` and the config dump. */
  readonly values = new Map<string, string>();
  private readonly origin = new Map<string, string>();

  constructor(raw: RawConfig) {
    for (const e of SETTING_LIST) this.set(e.id, defaultValue(e.setting), DEFAULT_ORIGIN);
    for (const [section, keys] of raw) {
      for (const [key, v] of keys) {
        const id = `${section}.${key}`;
        if (!OPEN_SECTIONS.has(section) && !findSetting(id) && !(id in LEGACY_KEYS)) {
          this.warnings.push(`${v.file}: [${section}] ${key} is not a known setting; ignored`);
        }
        this.set(id, v.value, v.file);
      }
    }
    this.applyRenamed(raw);
  }

  /** An old name, when present, always wins over the new one. */
  private applyRenamed(raw: RawConfig): void {
    for (const [id, legacy] of Object.entries(LEGACY_KEYS)) {
      if (!legacy.renamedTo) continue;
      const [section = '', key = ''] = id.split('.', 2);
      const old = raw.get(section)?.get(key);
      if (!old) continue;
      this.set(legacy.renamedTo, old.value, old.file);
      const [toSection = '', toKey = ''] = legacy.renamedTo.split('.', 2);
      this.warnings.push(`${old.file}: [${section}] ${key} is deprecated; it now sets [${toSection}] ${toKey}`);
    }
  }

  private set(id: string, value: string, file: string): void {
    this.values.set(id, value);
    this.origin.set(id, file);
  }

  /** The trimmed effective text of `section.key`; empty when nothing set it. */
  value(section: string, key: string): string {
    return (this.values.get(`${section}.${key}`) ?? '').trim();
  }

  fail(section: string, key: string, message: string): void {
    const id = `${section}.${key}`;
    this.problems.push({ file: this.origin.get(id) ?? DEFAULT_ORIGIN, section, key, value: this.values.get(id) ?? '', message });
  }

  warn(message: string): void {
    this.warnings.push(message);
  }

  /** True when a problem was already found with any of `keys` of `section`. */
  failed(section: string, ...keys: string[]): boolean {
    return this.problems.some((p) => p.section === section && keys.includes(p.key));
  }

  /** What a parser of `section.key` sees. */
  context(section: string, key: string, configDir: string): ParseContext {
    return {
      configDir,
      value: (s, k) => this.value(s, k),
      fail: (message) => this.fail(section, key, message),
      warn: (message) => this.warn(`[${section}] ${key} ${message}`),
    };
  }
}
