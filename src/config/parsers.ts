// Pure: turning one setting's text into its typed value. A parser reports what is wrong through
// its context and still returns a value of the right type, so that every key of every file is
// checked in one pass and all problems are reported together.

import path from 'node:path';
import { parseLevel, type Level } from '../log.js';
import { formatIPv4, isIP, parseIPv4 } from '../net/ip.js';
import { canonicalIPv6 } from '../net/ip6.js';

export interface ParseContext {
  /** The main config file's directory: relative paths are taken from there. */
  readonly configDir: string;
  /** The trimmed effective value of another setting, for the few that depend on one. */
  value(section: string, key: string): string;
  /** Records a problem with this setting's value; the message follows "key = value: ". */
  fail(message: string): void;
  /** Records a warning about this setting; the message follows "[section] key ". */
  warn(message: string): void;
}

/** Gets the setting's value trimmed; its return value is used only when nothing failed. */
export type Parser<T> = (s: string, ctx: ParseContext) => T;

const BOOLEANS: Readonly<Record<string, boolean>> = {
  yes: true, no: false, true: true, false: false, on: true, off: false, '1': true, '0': false,
};

/** The text as it is: settings any string is good for. */
export const text: Parser<string> = (s) => s;

/** md_server's "unset": empty or `none`. */
export const optional: Parser<string | null> = (s) => (s === '' || s.toLowerCase() === 'none' ? null : s);

export const bool: Parser<boolean> = (s, ctx) => {
  const v = BOOLEANS[s.toLowerCase()];
  if (v === undefined) ctx.fail('expected a boolean (yes/no, true/false, on/off, 1/0)');
  return v ?? false;
};

export function int(min: number, max: number): Parser<number> {
  return (s, ctx) => {
    if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) {
      ctx.fail(`expected a whole number from ${min} to ${max}`);
      return min;
    }
    return Number(s);
  };
}

/** One word matching `pattern`; `what` completes "expected …". */
export function matching(pattern: RegExp, what: string): Parser<string> {
  return (s, ctx) => {
    if (!pattern.test(s)) ctx.fail(`expected ${what}`);
    return s;
  };
}

export const ip: Parser<string> = (s, ctx) => {
  if (!isIP(s)) ctx.fail('expected an IP address');
  return s;
};

export const optionalIp: Parser<string | null> = (s, ctx) => {
  const v = optional(s, ctx);
  return v === null ? null : ip(v, ctx);
};

/** An IPv4 address, in its canonical dotted form. */
export const ipv4: Parser<string> = (s, ctx) => {
  const n = parseIPv4(s);
  if (n === null) ctx.fail('expected an IPv4 address');
  return formatIPv4(n ?? 0);
};

/** An IPv6 address (no zone index), in its canonical form. */
export const ipv6: Parser<string> = (s, ctx) => {
  const c = s.includes('%') ? null : canonicalIPv6(s);
  if (c === null) ctx.fail('expected an IPv6 address');
  return c ?? '::';
};

/** Paths are taken relative to the main config file's directory. */
export const filePath: Parser<string> = (s, ctx) => {
  if (s === '') ctx.fail('expected a path');
  return s === '' ? s : path.resolve(ctx.configDir, s);
};

export const optionalPath: Parser<string | null> = (s, ctx) => {
  const v = optional(s, ctx);
  return v === null ? null : path.resolve(ctx.configDir, v);
};

/** One of `options`, in any case; the first option stands in for a bad value. */
export function choice<T extends string>(options: readonly [T, ...T[]]): Parser<T> {
  return (s, ctx) => {
    const hit = options.find((o) => o === s.toLowerCase());
    if (hit === undefined) ctx.fail(`expected ${options.join(' or ')}`);
    return hit ?? options[0];
  };
}

export const level: Parser<Level> = (s, ctx) => {
  const l = parseLevel(s);
  if (!l) ctx.fail('expected a log level (debug, info, warning, error, critical)');
  return l ?? 'info';
};

/** md_server's "boolean or value": `no` (or empty) disables, anything else is the value itself. */
export function nameOrNo(pattern: RegExp, what: string): Parser<string | null> {
  return (s, ctx) => {
    const b = BOOLEANS[s.toLowerCase()];
    if (b === false || s === '') return null;
    if (b === true || !pattern.test(s)) {
      ctx.fail(`expected ${what}, or no`);
      return null;
    }
    return s;
  };
}

/** A `sep`-separated list, each item trimmed; empty items are kept when `keepEmpty`. */
export function list(sep: string, keepEmpty: boolean): Parser<readonly string[]> {
  return (s) => s.split(sep).map((x) => x.trim()).filter((x) => keepEmpty || x !== '');
}

/** The admin socket's file name inside `[dnsmasq] run_dir` when `admin_socket` is left empty. */
export const ADMIN_SOCKET_NAME = 'admin.sock';
/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/**
 * Where the admin socket lives: empty means `<run_dir>/admin.sock`, `no` (or none/off/false)
 * disables it, anything else is a path relative to the main config file's directory. Exported so
 * that the command line can find a running server even when the file on disk no longer validates.
 */
export function adminSocketPath(raw: string, runDir: string, configDir: string): string | null {
  const s = raw.trim();
  if (['no', 'none', 'off', 'false'].includes(s.toLowerCase())) return null;
  if (s === '') return path.join(path.resolve(configDir, runDir), ADMIN_SOCKET_NAME);
  return path.resolve(configDir, s);
}

export const adminSocket: Parser<string | null> = (s, ctx) => {
  const p = adminSocketPath(s, ctx.value('dnsmasq', 'run_dir'), ctx.configDir);
  if (p !== null && Buffer.byteLength(p) > MAX_SOCKET_PATH) {
    ctx.fail(`the socket path ${p} is longer than ${MAX_SOCKET_PATH} bytes`);
  }
  return p;
};
