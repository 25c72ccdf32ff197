// Test support: a shipped systemd unit's commands, run as systemd would run them, where systemd
// itself cannot (tests run without it): its RuntimeDirectory= made, its ExecStartPre= lines in
// order ("+" ones outside the sandbox), then ExecStart= under the unit's CapabilityBoundingSet=
// and NoNewPrivileges= (applied with setpriv), inside a test's network namespace. The unit's own
// paths are mapped to the test's.

import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Netns } from './netns.js';
import { ROOT } from './process.js';

export interface Unit {
  readonly file: string;
  /** Every value of `key`, in file order. */
  values(key: string): string[];
  value(key: string): string | undefined;
}

export function readUnit(name: string): Unit {
  const file = path.join(ROOT, 'systemd', name);
  const entries = fs.readFileSync(file, 'utf8').split('\n')
    .filter((l) => /^[A-Za-z]+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const);
  return {
    file,
    values: (key) => entries.filter(([k]) => k === key).map(([, v]) => v),
    value: (key) => entries.filter(([k]) => k === key).at(-1)?.[1],
  };
}

/** A command line of the unit with its paths mapped (longest prefix first); "+" marks full privileges. */
export function command(line: string, paths: Readonly<Record<string, string>>): { privileged: boolean; argv: string[] } {
  const privileged = line.startsWith('+');
  const prefixes = Object.keys(paths).sort((a, b) => b.length - a.length);
  const argv = (privileged ? line.slice(1) : line).trim().split(/\s+/).map((arg) => {
    for (const p of prefixes) {
      const at = arg.indexOf(p);
      if (at >= 0) return arg.slice(0, at) + (paths[p] as string) + arg.slice(at + p.length);
    }
    return arg;
  });
  return { privileged, argv };
}

/** setpriv's arguments for the unit's sandbox as far as privileges go: capabilities and no_new_privs. */
export function privileges(unit: Unit): string[] {
  const caps = (unit.value('CapabilityBoundingSet') ?? '').split(/\s+/).filter(Boolean).map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`);
  const args = ['--bounding-set', ['-all', ...caps].join(',')];
  if (unit.value('NoNewPrivileges') === 'yes') args.push('--no-new-privs');
  return args;
}

export interface Started {
  child: ChildProcess;
  output(): string;
}

/**
 * Makes the unit's runtime directory, runs its ExecStartPre= commands and starts ExecStart= (with
 * `extra` arguments appended) in `ns`. A failing ExecStartPre= throws, as it fails the start.
 */
export function startUnit(ns: Netns, unit: Unit, paths: Readonly<Record<string, string>>, extra: string[] = []): Started {
  for (const dir of unit.values('RuntimeDirectory')) {
    const mapped = command(`/run/${dir}`, paths).argv[0] as string;
    fs.mkdirSync(mapped, { recursive: true, mode: Number.parseInt(unit.value('RuntimeDirectoryMode') ?? '0755', 8) });
  }
  const sandbox = privileges(unit);
  for (const line of unit.values('ExecStartPre')) {
    const { privileged, argv } = command(line, paths);
    const full = privileged ? argv : ['setpriv', ...sandbox, ...argv];
    const r = ns.try(full[0] as string, full.slice(1));
    if (r.status !== 0) throw new Error(`ExecStartPre=${line} failed (${r.status}): ${r.stdout}${r.stderr}`);
  }
  const start = unit.value('ExecStart');
  if (!start) throw new Error(`${unit.file} has no ExecStart=`);
  const { argv } = command(start, paths);
  const child = ns.spawn('setpriv', [...sandbox, ...argv, ...extra]);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  return { child, output: () => out };
}
