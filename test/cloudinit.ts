// Test support: running cloud-init's own Python code and its ds-identify script, as Debian's
// cloud-init package installs them (never its services).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser } from 'fast-xml-parser';

type Obj = Record<string, unknown>;

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

/**
 * The DMI files a guest's kernel shows under /sys/class/dmi/id for a domain XML document, as
 * QEMU passes `<sysinfo type='smbios'><system>` to the guest when `<os><smbios mode='sysinfo'/>`
 * is set (without it the guest sees QEMU's defaults). The system uuid is the domain uuid.
 */
export function guestDmi(domainXml: string): Record<string, string> {
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, isArray: (n) => ['entry', 'sysinfo'].includes(n) });
  const d = (parser.parse(domainXml) as Obj)['domain'] as Obj;
  const dmi: Record<string, string> = {
    sys_vendor: 'QEMU',
    product_name: 'Standard PC (Q35 + ICH9, 2009)',
    product_serial: '',
    product_uuid: String(d['uuid'] ?? '').trim().toLowerCase(),
    chassis_asset_tag: '',
    board_name: '',
  };
  const os = d['os'] as Obj | undefined;
  const smbios = os?.['smbios'] as Obj | undefined;
  if (smbios?.['@mode'] !== 'sysinfo') return dmi;
  const sysinfo = ((d['sysinfo'] as Obj[] | undefined) ?? []).find((s) => (s['@type'] ?? 'smbios') === 'smbios');
  const system = sysinfo?.['system'] as Obj | undefined;
  const files: Record<string, string> = { manufacturer: 'sys_vendor', product: 'product_name', serial: 'product_serial', uuid: 'product_uuid', version: 'product_version', family: 'product_family', sku: 'product_sku' };
  for (const e of (system?.['entry'] as Obj[] | undefined) ?? []) {
    const file = files[String(e['@name'])];
    if (file) dmi[file] = file === 'product_uuid' ? String(e['#text'] ?? '').toLowerCase() : String(e['#text'] ?? '');
  }
  return dmi;
}

/** A fake root for a guest: /sys/class/dmi/id from `dmi`, a kernel command line, nothing else. */
export function fakeGuestRoot(dir: string, dmi: Record<string, string>): string {
  const id = path.join(dir, 'sys', 'class', 'dmi', 'id');
  fs.mkdirSync(id, { recursive: true });
  fs.mkdirSync(path.join(dir, 'proc'), { recursive: true });
  // sysfs ends every value with a newline; ds-identify's `read` needs it.
  for (const [k, v] of Object.entries(dmi)) fs.writeFileSync(path.join(id, k), `${v}\n`);
  fs.writeFileSync(path.join(dir, 'proc', 'cmdline'), 'BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro console=ttyS0\n');
  return dir;
}

export interface DsIdentifyResult {
  /** 0: cloud-init enabled, 1: disabled. */
  status: number | null;
  /** The datasource_list ds-identify wrote for cloud-init, e.g. ['OpenStack', 'None']. */
  datasources: string[] | null;
  log: string;
}

/**
 * Runs Debian's ds-identify against the fake root. Its own path variables point it there; what
 * it would ask the host instead (virtualisation type, block devices) is answered as a KVM guest
 * with one ext4 root disk would answer, by redefining those two functions after sourcing it.
 */
export function runDsIdentify(root: string): DsIdentifyResult {
  const script = [
    `PATH_ROOT='${root}'`,
    'DI_MAIN=noop',
    'DI_LOG=stderr',
    `. '${DS_IDENTIFY}'`,
    'detect_virt() { _RET=kvm; }',
    "blkid_export() { DI_BLKID_EXPORT_OUT='DEVNAME=/dev/vda1",
    'TYPE=ext4',
    "LABEL=cloudimg-rootfs'; }",
    'main --force',
  ].join('\n');
  const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', timeout: 30000 });
  let datasources: string[] | null = null;
  try {
    const cfg = fs.readFileSync(path.join(root, 'run', 'cloud-init', 'cloud.cfg'), 'utf8');
    const m = /^datasource_list: \[(.*)\]/m.exec(cfg);
    if (m) datasources = (m[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  } catch {
    // no result written: cloud-init stays disabled
  }
  return { status: r.status, datasources, log: r.stderr };
}
