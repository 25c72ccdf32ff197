// Test support: Debian 13's cloud-init (25.1), for tests that run a current cloud-init's own code
// as a library. Its package is fetched with `apt-get download` through an apt configuration of its
// own (sources list, state and cache in a cache directory), so the machine's apt sources, package
// lists and installed packages stay exactly as they are, and unpacked beside it. The cache lives
// outside the checkout (MDSERVER_TEST_CACHE, else /var/cache/mdserver-test-cloudinit) and is
// reused: only the first run needs the mirror.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { debianMirror } from './vm/image.js';

const CACHE = process.env['MDSERVER_TEST_CACHE'] ?? '/var/cache/mdserver-test-cloudinit';
const SUITE = 'trixie';

function apt(args: string[], cwd: string): void {
  const opts = [
    `Dir::Etc::SourceList=${path.join(CACHE, 'sources.list')}`, 'Dir::Etc::SourceParts=/dev/null',
    `Dir::State=${path.join(CACHE, 'state')}`, `Dir::Cache=${path.join(CACHE, 'cache')}`, 'Dir::State::status=/dev/null',
    // The download lands in the cache directory as root; apt's _apt user could not write there.
    'APT::Sandbox::User=root',
  ].flatMap((o) => ['-o', o]);
  const r = spawnSync('apt-get', ['-q', ...opts, ...args], { cwd, encoding: 'utf8', timeout: 300000 });
  if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
}

/**
 * The directory to put on PYTHONPATH for Debian 13's cloud-init (its `cloudinit` package), after
 * fetching and unpacking it once; throws when it cannot be had (no mirror, no apt-get).
 */
export function trixieCloudInit(): string {
  const root = path.join(CACHE, `cloud-init-${SUITE}`);
  const lib = path.join(root, 'usr', 'lib', 'python3', 'dist-packages');
  if (fs.existsSync(path.join(lib, 'cloudinit', 'version.py'))) return lib;
  for (const d of ['state/lists/partial', 'cache/archives/partial', 'debs']) fs.mkdirSync(path.join(CACHE, d), { recursive: true });
  fs.writeFileSync(path.join(CACHE, 'sources.list'),
    `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${debianMirror().main} ${SUITE} main\n`);
  apt(['update'], CACHE);
  const debs = path.join(CACHE, 'debs');
  for (const f of fs.readdirSync(debs)) fs.rmSync(path.join(debs, f));
  apt(['download', 'cloud-init'], debs);
  const deb = fs.readdirSync(debs).find((f) => f.startsWith('cloud-init_'));
  if (!deb) throw new Error('apt-get download cloud-init left no package');
  // Unpacked into a fresh directory, renamed into place: a run cut short leaves no half tree.
  const tmp = `${root}.${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const x = spawnSync('dpkg-deb', ['-x', path.join(debs, deb), tmp], { encoding: 'utf8' });
  if (x.status !== 0) throw new Error(`dpkg-deb -x ${deb} failed: ${x.stderr}`);
  fs.rmSync(root, { recursive: true, force: true });
  fs.renameSync(tmp, root);
  return lib;
}
