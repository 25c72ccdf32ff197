// Debian guest images for the real-VM tests: a root file system built from Debian's packages with
// mmdebstrap, packed into an ext4 image with `mkfs.ext4 -d`, and its kernel and initrd beside it
// for direct kernel boot. Images are cached outside the checkout, keyed by everything that goes
// into them, so a second run reuses them; boots never write to them (each boot gets its own
// copy-on-write overlay).
//
// Run directly (`node dist/test/vm/image.js bookworm trixie`) to build or find the images.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Suite = 'bookworm' | 'trixie';
export const SUITES: readonly Suite[] = ['bookworm', 'trixie'];

/** Where images are kept between runs; MDSERVER_VM_CACHE overrides it. */
export const CACHE_DIR = process.env['MDSERVER_VM_CACHE'] ?? '/var/cache/mdserver-test-vm';

/**
 * What a stock Debian cloud image has that matters to the test: systemd and D-Bus (cloud-init sets
 * the host name through hostnamectl), cloud-init, sshd, the cloud kernel, and ifupdown with
 * dhclient, which cloud-init renders its network configuration for and runs for its own
 * ephemeral DHCP. curl and iproute2 let the test look at the guest's network from inside it.
 */
export const PACKAGES = [
  'systemd-sysv',
  'udev',
  'dbus',
  'cloud-init',
  'openssh-server',
  'linux-image-cloud-amd64',
  'initramfs-tools',
  'ifupdown',
  'isc-dhcp-client',
  'iproute2',
  'netbase',
  'locales',
  'sudo',
  'curl',
  'procps',
  // resize2fs for cloud-init's resizefs module, fsck for the boot
  'e2fsprogs',
  // cloud-init's CloudStack datasource fetches the one-time password with wget, as CloudStack
  // templates expect
  'wget',
  // not in a cloud image: the systemd test (systemd.test.ts) runs mdserver-dnsmasq.service in a
  // container of this image
  'dnsmasq-base',
];

// Run inside mmdebstrap after the packages are installed. Debian's locale-gen ignores its
// arguments and builds what /etc/locale.gen lists; cloud-init's locale module sets en_US.UTF-8
// and fails when that locale does not exist.
//
// Two departures from a stock image, both for time that says nothing about the metadata path:
// cloud-init makes only the ed25519 and ECDSA host keys (a 3072-bit RSA and a DSA key took over a
// minute of emulated CPU on each first boot), and the system locale is already set to the one
// cloud-init's locale module asks for, so that module finds nothing to do instead of running
// locale-gen again (18 s of emulated CPU on each first boot).
const CUSTOMIZE = [
  'echo "en_US.UTF-8 UTF-8" > "$1/etc/locale.gen"',
  'chroot "$1" locale-gen',
  'printf "LANG=en_US.UTF-8\\n" > "$1/etc/default/locale"',
  'printf "ssh_genkeytypes: [ed25519, ecdsa]\\n" > "$1/etc/cloud/cloud.cfg.d/50-mdserver-test.cfg"',
];

/** Bump when what build() does to the tree changes, so that cached images are rebuilt. */
const RECIPE_VERSION = 2;

export interface Image {
  suite: Suite;
  dir: string;
  kernel: string;
  initrd: string;
  /** The ext4 root file system (raw); read-only to boots. */
  root: string;
  /** Versions of the packages that matter, read from the image's dpkg database. */
  versions: Record<string, string>;
  /** Seconds the build took (0 when the image came from the cache). */
  buildSeconds: number;
}

function key(suite: Suite): string {
  return createHash('sha256')
    .update(JSON.stringify({ suite, packages: PACKAGES, customize: CUSTOMIZE, recipe: RECIPE_VERSION }))
    .digest('hex')
    .slice(0, 16);
}

/**
 * The Debian mirror to build from: MDSERVER_VM_MIRROR, else the first Debian archive in this
 * machine's own apt sources (a CI machine reaches the mirror its own apt uses).
 */
export function debianMirror(): { main: string; security: string } {
  const env = process.env['MDSERVER_VM_MIRROR'];
  const securityEnv = process.env['MDSERVER_VM_SECURITY_MIRROR'];
  const uris: string[] = [];
  const files = ['/etc/apt/sources.list'];
  try {
    for (const f of fs.readdirSync('/etc/apt/sources.list.d')) files.push(path.join('/etc/apt/sources.list.d', f));
  } catch {
    // no directory
  }
  for (const f of files) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (t.startsWith('#')) continue;
      // one-line form: deb [opts] URI suite components; deb822 form: URIs: URI
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(t) ?? /^URIs:\s*(\S+)/i.exec(t);
      if (m?.[1]) uris.push(m[1].replace(/\/+$/, ''));
    }
  }
  const main = env ?? uris.find((u) => /\/debian$/.test(u));
  if (!main) throw new Error('no Debian mirror in /etc/apt/sources.list*; set MDSERVER_VM_MIRROR');
  const security = securityEnv ?? uris.find((u) => /\/debian-security$/.test(u)) ?? main.replace(/\/debian$/, '/debian-security');
  return { main, security };
}

function sources(suite: Suite): string[] {
  const m = debianMirror();
  return [`deb ${m.main} ${suite} main`, `deb ${m.main} ${suite}-updates main`, `deb ${m.security} ${suite}-security main`];
}

function readManifest(dir: string): Image | null {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'image.json'), 'utf8')) as Image;
    for (const f of [m.kernel, m.initrd, m.root]) if (!fs.existsSync(f)) return null;
    return { ...m, buildSeconds: 0 };
  } catch {
    return null;
  }
}

function log(msg: string): void {
  process.stderr.write(`[vm image] ${msg}\n`);
}

/** Returns the cached image of `suite`, building it first when there is none. */
export function ensureImage(suite: Suite): Image {
  const dir = path.join(CACHE_DIR, `${suite}-${key(suite)}`);
  const cached = readManifest(dir);
  if (cached) return cached;
  return build(suite, dir);
}

function build(suite: Suite, dir: string): Image {
  const started = Date.now();
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const work = `${dir}.build-${process.pid}`;
  const rootfs = path.join(work, 'rootfs');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const cleanup = (): void => {
    fs.rmSync(work, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  try {
    log(`building ${suite} into ${dir} (mmdebstrap, a few minutes)`);
    const args = [
      '--variant=apt',
      `--include=${PACKAGES.join(',')}`,
      ...CUSTOMIZE.map((h) => `--customize-hook=${h}`),
      suite,
      rootfs,
      ...sources(suite),
    ];
    const r = spawnSync('nice', ['mmdebstrap', ...args], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 30 * 60_000 });
    if (r.status !== 0) throw new Error(`mmdebstrap ${suite} failed (${r.status ?? r.signal ?? r.error?.message})`);

    // mmdebstrap copies the build machine's resolv.conf and host name into the tree. A name
    // server the guest cannot reach makes every DNS lookup of cloud-init stall for 30 s, and the
    // host name is cloud-init's to set: both start out empty, as in Debian's cloud images.
    fs.writeFileSync(path.join(rootfs, 'etc/resolv.conf'), '');
    fs.writeFileSync(path.join(rootfs, 'etc/hostname'), 'localhost\n');
    fs.writeFileSync(path.join(rootfs, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n');
    fs.writeFileSync(path.join(rootfs, 'etc/fstab'), '/dev/vda / ext4 rw,discard,errors=remount-ro 0 1\n');
    // A fresh machine-id on every first boot (systemd writes it when the file is empty).
    fs.writeFileSync(path.join(rootfs, 'etc/machine-id'), '');
    // cloud-init writes its network configuration to interfaces.d; ifupdown reads it from there
    // only when the main file says so.
    const ifaces = path.join(rootfs, 'etc/network/interfaces');
    const current = fs.existsSync(ifaces) ? fs.readFileSync(ifaces, 'utf8') : '';
    if (!/^\s*source(-directory)?\s+\/etc\/network\/interfaces\.d/m.test(current)) {
      fs.writeFileSync(ifaces, `${current}\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n`);
    }

    const boot = fs.readdirSync(path.join(rootfs, 'boot'));
    const kernel = boot.find((f) => f.startsWith('vmlinuz-'));
    const initrd = boot.find((f) => f.startsWith('initrd.img-'));
    if (!kernel || !initrd) throw new Error(`no kernel or initrd in ${suite}'s /boot: ${boot.join(' ')}`);
    fs.copyFileSync(path.join(rootfs, 'boot', kernel), path.join(work, 'vmlinuz'));
    fs.copyFileSync(path.join(rootfs, 'boot', initrd), path.join(work, 'initrd.img'));

    const versions: Record<string, string> = {};
    for (const pkg of ['cloud-init', 'systemd', 'linux-image-cloud-amd64', 'ifupdown', 'isc-dhcp-client']) {
      versions[pkg] = execFileSync('dpkg-query', ['--admindir', path.join(rootfs, 'var/lib/dpkg'), '-W', '-f', '${Version}', pkg], { encoding: 'utf8' });
    }

    // The image has room to spare for what a boot writes; it is sparse, so the spare costs nothing.
    const usedKiB = Number(execFileSync('du', ['-sk', '--one-file-system', rootfs], { encoding: 'utf8' }).split('\t')[0]);
    const sizeMiB = Math.ceil(usedKiB / 1024) + 1024;
    const img = path.join(work, 'root.img');
    execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'root', '-d', rootfs, img, `${sizeMiB}M`], { stdio: 'inherit' });
    fs.rmSync(rootfs, { recursive: true, force: true });

    const buildSeconds = Math.round((Date.now() - started) / 1000);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(work, dir);
    const image: Image = {
      suite,
      dir,
      kernel: path.join(dir, 'vmlinuz'),
      initrd: path.join(dir, 'initrd.img'),
      root: path.join(dir, 'root.img'),
      versions,
      buildSeconds,
    };
    fs.writeFileSync(path.join(dir, 'image.json'), JSON.stringify(image, null, 2) + '\n');
    log(`built ${suite} in ${buildSeconds} s: cloud-init ${versions['cloud-init']}, kernel ${kernel}`);
    // Images of this suite under another key are stale now (the list or the recipe changed).
    for (const f of fs.readdirSync(CACHE_DIR)) {
      if (new RegExp(`^${suite}-[0-9a-f]{16}$`).test(f) && path.join(CACHE_DIR, f) !== dir) {
        log(`removing the stale image ${f}`);
        fs.rmSync(path.join(CACHE_DIR, f), { recursive: true, force: true });
      }
    }
    return image;
  } finally {
    cleanup();
    process.removeListener('exit', cleanup);
  }
}

/** The suites MDSERVER_VM_SUITES names (comma-separated), or all of them. */
export function selectedSuites(): Suite[] {
  const env = process.env['MDSERVER_VM_SUITES'];
  if (!env) return [...SUITES];
  const wanted = env.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of wanted) if (!(SUITES as readonly string[]).includes(s)) throw new Error(`MDSERVER_VM_SUITES: unknown suite ${s} (expected ${SUITES.join(', ')})`);
  return wanted as Suite[];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const wanted = process.argv.slice(2);
  for (const s of wanted.length > 0 ? wanted : selectedSuites()) {
    if (!(SUITES as readonly string[]).includes(s)) throw new Error(`unknown suite ${s}`);
    const img = ensureImage(s as Suite);
    process.stdout.write(`${img.suite}: ${img.dir} (cloud-init ${img.versions['cloud-init']}${img.buildSeconds ? `, built in ${img.buildSeconds} s` : ', cached'})\n`);
  }
}
