// The layering of src/ as doc/architecture.md describes it: no import runs from a lower layer up
// to a higher one, and no source file grows past the size where it stops having one job.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SRC = path.join(ROOT, 'src');

/** Higher numbers are higher layers; the first matching prefix (relative to src/) decides. */
const LAYERS: [string, number][] = [
  ['cli/', 10],
  ['server.ts', 9],
  ['admin/', 8],
  ['http/', 7],
  ['services.ts', 6],
  ['instances/', 5],
  ['userdata/', 5],
  ['provisioning/', 5],
  ['metadata/', 4],
  ['health.ts', 4],
  ['reload.ts', 3],
  ['dnsmasq/', 3],
  ['config/', 2],
  ['store/', 2],
  ['libvirt/', 2],
  ['systemd/', 2],
  ['net/', 1],
  ['errors.ts', 1],
  ['log.ts', 1],
  ['metrics/', 1],
  ['atomic.ts', 1],
  ['ids.ts', 1],
  ['names.ts', 1],
  ['version.ts', 1],
];

function layerOf(rel: string): number {
  const hit = LAYERS.find(([prefix]) => rel === prefix || rel.startsWith(prefix));
  assert.ok(hit, `src/${rel} is in no layer: add it to doc/architecture.md and to LAYERS here`);
  return hit[1];
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The project files a module imports (type-only imports included: they tie layers too). */
function imports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/gm)) {
    out.push(path.resolve(path.dirname(file), (m[1] as string).replace(/\.js$/, '.ts')));
  }
  return out;
}

test('no module imports from a layer above its own', () => {
  const upward: string[] = [];
  for (const file of sources(SRC)) {
    const from = path.relative(SRC, file);
    for (const target of imports(file)) {
      const to = path.relative(SRC, target);
      if (layerOf(to) > layerOf(from)) upward.push(`${from} -> ${to}`);
    }
  }
  assert.deepEqual(upward, []);
});

test('the layer check sees the imports it is meant to judge', () => {
  // Guards the check above against passing because it found nothing.
  const server = imports(path.join(SRC, 'server.ts')).map((t) => path.relative(SRC, t));
  assert.ok(server.includes(path.join('http', 'app.ts')), server.join(', '));
  assert.ok(server.includes('services.ts'), server.join(', '));
});

test('no source file is over 360 lines', () => {
  const long = sources(SRC)
    .map((f) => [path.relative(SRC, f), fs.readFileSync(f, 'utf8').split('\n').length] as const)
    .filter(([, n]) => n > 360);
  assert.deepEqual(long, []);
});
