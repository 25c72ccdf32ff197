// `node dist/bench/profile.js FILE.cpuprofile [N]`: the functions and the source files where a
// V8 CPU profile (from `node --cpu-prof`, e.g. `npm run bench -- --profile`) spent its samples,
// by self time, so that a finding can be read without opening DevTools.

import fs from 'node:fs';
import { fmt, table } from './stats.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const dist = url.lastIndexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, '') || '(native)';
}

export function summariseProfile(p: Profile, top: number): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const f = byId.get(id)?.callFrame;
    if (!f) continue;
    const file = shortUrl(f.url);
    const fn = `${f.functionName || '(anonymous)'} ${file}${f.url ? `:${f.lineNumber + 1}` : ''}`;
    fns.set(fn, (fns.get(fn) ?? 0) + us);
    const group = f.url ? file.split('/').slice(0, file.startsWith('dist/') ? 3 : 1).join('/') : file;
    files.set(group, (files.get(group) ?? 0) + us);
  }
  const rows = (m: Map<string, number>): string[][] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, us]) => [k, fmt(us / 1000, ' ms'), `${((us / total) * 100).toFixed(1)}%`]);
  return [
    `${fmt(total / 1000, ' ms')} sampled`,
    table(['self time by function', 'ms', 'share'], rows(fns)),
    '',
    table(['self time by package or directory', 'ms', 'share'], rows(files)),
  ].join('\n');
}

const file = process.argv[2];
if (file) {
  process.stdout.write(summariseProfile(JSON.parse(fs.readFileSync(file, 'utf8')) as Profile, Number(process.argv[3] ?? 25)) + '\n');
}
