// Test support: running cloud-init's own Python code and its ds-identify script, as Debian's
// cloud-init package installs them (never its services).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Debian's interpreter: the cloud-init modules live in its dist-packages, not in a pyenv. */
export const PYTHON = '/usr/bin/python3';
export const DS_IDENTIFY = '/usr/lib/cloud-init/ds-identify';

/** The Python helpers beside the tests (test/py), from either test/ or dist/test/. */
export const PY_DIR = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const c of [path.join(here, 'py'), path.join(here, '..', '..', 'test', 'py')]) {
    if (fs.existsSync(c)) return c;
  }
  throw new Error('test/py not found');
})();

export function cloudInitUnavailable(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import cloudinit.version as v; print(v.version_string())'], { encoding: 'utf8' });
  if (r.status !== 0) return "needs Debian's cloud-init package";
  if (!fs.existsSync(DS_IDENTIFY)) return `needs ${DS_IDENTIFY}`;
  return null;
}

/** Skips without cloud-init on a developer machine; under CI (CI=true) its absence is a failure. */
export function skipUnlessCloudInit(): { skip: string | false } {
  const why = cloudInitUnavailable();
  if (why && process.env['CI'] === 'true') throw new Error(`cloud-init tests cannot run under CI: ${why}`);
  return { skip: why ?? false };
}

/** Runs test/py/<script> with `input` as JSON on stdin and returns its JSON output. */
export function runPy<T = Record<string, unknown>>(script: string, input: unknown, env: Record<string, string> = {}): T {
  const r = spawnSync(PYTHON, [path.join(PY_DIR, script)], {
    input: JSON.stringify(input),
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 120000,
  });
  if (r.status !== 0) throw new Error(`${script} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
