// The test helpers themselves: what a test run leaves behind in the temporary directory.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HELPERS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers.js');

test('a temporary directory is removed when its test process ends, even after a failure', () => {
  // A process standing in for a test file whose test fails before its own cleanup runs.
  const script = `
    const { tempDir } = await import(${JSON.stringify(HELPERS)});
    const dir = tempDir();
    (await import('node:fs')).writeFileSync(dir + '/file', 'x');
    console.log(dir);
    throw new Error('an assertion failed');
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.notEqual(r.status, 0, 'the stand-in test failed');
  const dir = r.stdout.trim();
  assert.match(path.basename(dir), /^mdserver-test-/);
  assert.equal(fs.existsSync(dir), false, `${dir} is left behind`);
});
