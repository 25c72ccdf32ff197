// Reads md_server's ini files (main file, then `[_include_]` directories and files) into one
// layered map of raw string values, remembering which file set each key so that validation can
// name it.

import fs from 'node:fs';
import path from 'node:path';
import ini from 'ini';

export interface RawValue {
  value: string;
  file: string;
}

/** section -> key -> value, in the order keys were first seen (public keys depend on it). */
export type RawConfig = Map<string, Map<string, RawValue>>;

export interface ReadProblem {
  file: string;
  message: string;
}

/**
 * Escapes what the `ini` package would otherwise treat specially inside an unquoted value, so that
 * values read as Python's ConfigParser (md_server) read them: `;` and `#` after the `=` are part of
 * the value, not a comment, and backslashes are literal.
 */
function protectValues(text: string): string {
  return text
    .split(/\r?\n/)
    .map((line) => {
      if (/^\s*[;#[]/.test(line)) return line;
      const eq = line.indexOf('=');
      if (eq < 0) return line;
      const value = line.slice(eq + 1).trim();
      if (value.length > 1 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) return line;
      return line.slice(0, eq + 1) + value.replace(/[\\;#]/g, (c) => '\\' + c);
    })
    .join('\n');
}

function asString(v: unknown): string {
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (v === null) return 'null';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Parses one file's text into section -> key -> value (keys lower-cased, as ConfigParser does). */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const decoded = ini.decode(protectValues(text), { bracketedArray: false }) as Record<string, unknown>;
  const out = new Map<string, Map<string, string>>();
  const visit = (prefix: string, obj: Record<string, unknown>): void => {
    for (const [key, value] of Object.entries(obj)) {
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        // ini splits section names on dots; put them back together.
        visit(prefix ? `${prefix}.${key}` : key, value as Record<string, unknown>);
        continue;
      }
      // Keys outside any section are ignored, as ConfigParser refuses them.
      if (!prefix) continue;
      let section = out.get(prefix);
      if (!section) out.set(prefix, (section = new Map<string, string>()));
      const last: unknown = Array.isArray(value) ? (value as unknown[])[value.length - 1] : value;
      section.set(key.trim().toLowerCase(), asString(last));
    }
  };
  visit('', decoded);
  return out;
}

function merge(into: RawConfig, file: string, parsed: Map<string, Map<string, string>>, skipInclude: boolean): void {
  for (const [section, entries] of parsed) {
    if (skipInclude && section === '_include_') continue;
    let target = into.get(section);
    if (!target) into.set(section, (target = new Map<string, RawValue>()));
    for (const [key, value] of entries) target.set(key, { value, file });
  }
}

function readFile(file: string, problems: ReadProblem[]): Map<string, Map<string, string>> | null {
  try {
    return parseIni(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    problems.push({ file, message: `cannot read included file: ${(e as Error).message}` });
    return null;
  }
}

function splitList(v: string | undefined): string[] {
  return (v ?? '')
    .split(':')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export interface ReadResult {
  raw: RawConfig;
  files: string[];
  problems: ReadProblem[];
}

/**
 * Reads the main file and its includes in md_server's order: all `*.conf` files of each
 * `[_include_] directories` entry (lexical order, dot files skipped), then each `files` entry; the
 * last file to set a key wins. Includes that do not exist are skipped, as md_server did; ones that
 * exist but cannot be read are problems. `[_include_]` is only honoured in the main file.
 */
export function readConfigFiles(mainFile: string): ReadResult {
  const raw: RawConfig = new Map();
  const problems: ReadProblem[] = [];
  const files: string[] = [];
  let main: Map<string, Map<string, string>>;
  try {
    main = parseIni(fs.readFileSync(mainFile, 'utf8'));
  } catch (e) {
    problems.push({ file: mainFile, message: `cannot read config file: ${(e as Error).message}` });
    return { raw, files, problems };
  }
  files.push(mainFile);
  merge(raw, mainFile, main, false);
  const include = main.get('_include_');
  const baseDir = path.dirname(path.resolve(mainFile));
  const resolve = (p: string): string => path.resolve(baseDir, p);

  for (const dir of splitList(include?.get('directories')).map(resolve)) {
    let names: string[];
    try {
      if (!fs.statSync(dir).isDirectory()) continue;
      names = fs
        .readdirSync(dir, { withFileTypes: true })
        .filter((d) => !d.name.startsWith('.') && d.name.endsWith('.conf') && (d.isFile() || d.isSymbolicLink()))
        .map((d) => d.name)
        .sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      problems.push({ file: dir, message: `cannot read included directory: ${(e as Error).message}` });
      continue;
    }
    for (const name of names) {
      const file = path.join(dir, name);
      const parsed = readFile(file, problems);
      if (parsed) {
        merge(raw, file, parsed, true);
        files.push(file);
      }
    }
  }
  for (const file of splitList(include?.get('files')).map(resolve)) {
    if (!fs.existsSync(file)) continue;
    const parsed = readFile(file, problems);
    if (parsed) {
      merge(raw, file, parsed, true);
      files.push(file);
    }
  }
  return { raw, files, problems };
}
