// Test support for the real clients a guest runs: cloud-init's own Python code (through the
// drivers in test/py) and its ds-identify script, as Debian's cloud-init package installs them
// (never its services), plus the one rule for when such tests skip.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser } from 'fast-xml-parser';
import { tempDir } from './helpers.js';
import { netnsUnavailable, type Netns } from './netns.js';
import { MDSERVER } from './process.js';
import { MDS_URL, type Vm } from './vmnet.js';

type Obj = Record<string, unknown>;

/** Debian's interpreter: the cloud-init modules live in its dist-packages, which a python found first on PATH (a pyenv, a venv) may not see. */
export const PYTHON = '/usr/bin/python3';
export const DS_IDENTIFY = '/usr/lib/cloud-init/ds-identify';

/** The Python drivers beside the tests (test/py), from either test/ or dist/test/. */
export const PY_DIR = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const c of [path.join(here, 'py'), path.join(here, '..', '..', 'test', 'py')]) {
    if (fs.existsSync(c)) return c;
  }
  throw new Error('test/py not found');
})();

/** What a test needs besides node itself. */
export interface Needs {
  /** Debian's cloud-init package: its Python modules and ds-identify. */
  cloudInit?: boolean;
  /** A VmNet: root, network namespaces and curl. */
  vmNet?: boolean;
  /** Commands the test runs inside a VM namespace (these imply vmNet). */
  tools?: string[];
}

function cloudInitUnavailable(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import cloudinit.version, cloudinit.sources.DataSourceEc2'], { stdio: 'ignore' });
  if (r.status !== 0) return "needs Debian's cloud-init package (python3 -c 'import cloudinit')";
  if (!fs.existsSync(DS_IDENTIFY)) return `needs ${DS_IDENTIFY} (Debian's cloud-init package)`;
  return null;
}

/** Why a test with these needs cannot run here, or null. */
export function unavailable(needs: Needs): string | null {
  if (needs.vmNet || needs.tools) {
    const why = netnsUnavailable(['curl', ...(needs.tools ?? [])]);
    if (why) return why;
  }
  return needs.cloudInit ? cloudInitUnavailable() : null;
}

/**
 * The skip option for node:test: a test skips on a developer machine that lacks what it needs,
 * but under CI (CI=true), where everything must be installed, a missing piece is a failure.
 */
export function skipUnless(needs: Needs): { skip: string | false } {
  const why = unavailable(needs);
  if (why && process.env['CI'] === 'true') throw new Error(`client tests cannot run under CI: ${why}`);
  return { skip: why ?? false };
}

/** A current cloud-init source tree to test as well, if the environment names one. */
export function upstreamCloudInit(): string | null {
  const dir = process.env['MDSERVER_CLOUDINIT_SRC'];
  if (!dir) return null;
  if (!fs.existsSync(path.join(dir, 'cloudinit', 'sources', 'DataSourceEc2.py'))) {
    throw new Error(`MDSERVER_CLOUDINIT_SRC=${dir} is not a cloud-init source tree`);
  }
  return dir;
}

export interface PyOptions {
  /** Run inside this namespace (a VM's), as a guest would, instead of on the host. */
  ns?: Netns;
  /** Put another cloud-init source tree in front of Debian's. */
  pythonPath?: string;
  timeoutMs?: number;
}

/**
 * Runs test/py/<script> with `input` as JSON on stdin and returns the JSON object it prints,
 * with what it wrote to stderr (cloud-init's log) as `log`.
 */
export function runPy<T extends object>(script: string, input: unknown, o: PyOptions = {}): T & { log: string } {
  // `env` sets PYTHONPATH the same way on the host and through `ip netns exec`.
  const args = [...(o.pythonPath ? [`PYTHONPATH=${o.pythonPath}`] : []), PYTHON, path.join(PY_DIR, script)];
  const stdin = JSON.stringify(input);
  const timeout = o.timeoutMs ?? 120000;
  const r = o.ns ? o.ns.try('env', args, stdin, timeout) : spawnSync('env', args, { input: stdin, encoding: 'utf8', timeout });
  if (r.status !== 0) throw new Error(`${script} failed (${r.status}):\n${(r.stderr ?? '').slice(-6000)}`);
  return { ...(JSON.parse(r.stdout) as T), log: r.stderr ?? '' };
}

/** What cloud-init's DataSourceEc2 concluded (see test/py/ec2_datasource.py). */
export interface DatasourceResult {
  cloud_init_version: string;
  /** Where the cloudinit package was imported from. */
  cloud_init_path: string;
  get_data: boolean;
  cloud_name: string;
  instance_id?: string;
  hostname?: string;
  fqdn?: string;
  public_keys?: string[];
  userdata_raw?: string;
  userdata?: Record<string, unknown> | null;
  availability_zone?: string | null;
  region?: string | null;
  launch_index?: string | null;
  network_config?: Record<string, unknown> | null;
  api_version?: string;
  metadata?: Record<string, unknown>;
  identity?: Record<string, unknown>;
  mac?: string;
  /** cloud-init's debug log. */
  log: string;
}

/**
 * Runs DataSourceEc2.get_data() inside the VM's namespace with the platform forced to `platform`;
 * cloud-init's state lives in a temporary directory removed afterwards. `pythonPath` puts another
 * cloud-init source tree (e.g. current upstream) in front of Debian's.
 */
export function runEc2Datasource(vm: Vm, platform: 'aws' | 'unknown', pythonPath?: string): DatasourceResult {
  const work = tempDir('mdserver-cloudinit-');
  try {
    const input = { platform, url: MDS_URL, work, iface: 'eth0' };
    return runPy<DatasourceResult>('ec2_datasource.py', input, { ns: vm.ns, pythonPath, timeoutMs: 180000 });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** A domain XML document after `mdserver sysinfo --style <style> --apply` on it, run as a user would. */
export function sysinfoApplied(domainXml: string, style: string): string {
  const dir = tempDir('mdserver-sysinfo-');
  try {
    const file = path.join(dir, 'domain.xml');
    fs.writeFileSync(file, domainXml);
    const r = spawnSync(process.execPath, [MDSERVER, 'sysinfo', '--style', style, '--apply', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return fs.readFileSync(file, 'utf8');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What a guest's kernel shows under /sys/class/dmi/id on a plain QEMU q35 machine: QEMU's own
 * defaults, and the domain uuid as the system uuid.
 */
export function qemuDmi(uuid: string): Record<string, string> {
  return {
    sys_vendor: 'QEMU',
    product_name: 'Standard PC (Q35 + ICH9, 2009)',
    product_serial: '',
    product_uuid: uuid.trim().toLowerCase(),
    chassis_asset_tag: '',
    board_name: '',
  };
}

/**
 * The DMI files a guest's kernel shows under /sys/class/dmi/id for a domain XML document, as
 * QEMU passes `<sysinfo type='smbios'><system>` to the guest when `<os><smbios mode='sysinfo'/>`
 * is set (without it the guest sees QEMU's defaults). The system uuid is the domain uuid.
 */
export function guestDmi(domainXml: string): Record<string, string> {
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, isArray: (n) => ['entry', 'sysinfo'].includes(n) });
  const d = (parser.parse(domainXml) as Obj)['domain'] as Obj;
  const dmi = qemuDmi(String(d['uuid'] ?? ''));
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

/** A guest as ds-identify and cloud-init's DMI code see it. */
export interface Guest {
  /** The files of /sys/class/dmi/id (see qemuDmi and guestDmi). */
  dmi: Record<string, string>;
  /** Files the image has in /etc/cloud/cloud.cfg.d. */
  cloudCfg?: Record<string, string>;
}

/** The DMI directory inside a root written by fakeGuestRoot. */
export function dmiDir(root: string): string {
  return path.join(root, 'sys', 'class', 'dmi', 'id');
}

/**
 * Writes a fake root for `guest` into `dir`: /sys/class/dmi/id, the image's cloud.cfg.d, pid 1's
 * command line and environment, and a kernel command line without any ds= hint (so the DMI data
 * alone decides); nothing else.
 */
export function fakeGuestRoot(dir: string, guest: Guest): string {
  const id = dmiDir(dir);
  const cfgDir = path.join(dir, 'etc', 'cloud', 'cloud.cfg.d');
  for (const d of [id, cfgDir, path.join(dir, 'proc', '1')]) fs.mkdirSync(d, { recursive: true });
  // sysfs ends every value with a newline; ds-identify's `read` needs it.
  for (const [k, v] of Object.entries(guest.dmi)) fs.writeFileSync(path.join(id, k), `${v}\n`);
  for (const [name, text] of Object.entries(guest.cloudCfg ?? {})) fs.writeFileSync(path.join(cfgDir, name), text);
  fs.writeFileSync(path.join(dir, 'proc', 'cmdline'), 'BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro console=ttyS0\n');
  fs.writeFileSync(path.join(dir, 'proc', '1', 'cmdline'), '/sbin/init\0');
  fs.writeFileSync(path.join(dir, 'proc', '1', 'environ'), '');
  return dir;
}

export interface DsIdentifyResult {
  /** 0: cloud-init enabled, 1: disabled. */
  status: number | null;
  /** The datasource_list ds-identify wrote for cloud-init, e.g. ['OpenStack', 'None']. */
  datasources: string[] | null;
  /** All of the cloud.cfg it wrote ('' if none). */
  cfg: string;
  log: string;
}

/**
 * Runs ds-identify (Debian's, or the script named) for `guest` over a scratch root removed
 * afterwards. Its own path variables point it there; what it would ask the host instead
 * (virtualisation type, block devices) is answered as a KVM guest with one ext4 root disk would
 * answer, by redefining those two functions after sourcing it. That also keeps this machine's
 * own state out of it (it may itself be a container, or have no systemd).
 */
export function runDsIdentify(guest: Guest, script = DS_IDENTIFY): DsIdentifyResult {
  const root = fakeGuestRoot(tempDir('mdserver-dsid-'), guest);
  try {
    const sh = [
      `. '${script}'`,
      'detect_virt() { _RET=kvm; }',
      "blkid_export() { DI_BLKID_EXPORT_OUT='DEVNAME=/dev/vda1",
      'TYPE=ext4',
      "LABEL=cloudimg-rootfs'; }",
      'main --force',
    ].join('\n');
    const r = spawnSync('sh', ['-c', sh], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', PATH_ROOT: root, DI_MAIN: 'noop', DI_LOG: 'stderr' },
      encoding: 'utf8',
      timeout: 30000,
    });
    let cfg = '';
    try {
      cfg = fs.readFileSync(path.join(root, 'run', 'cloud-init', 'cloud.cfg'), 'utf8');
    } catch {
      // nothing written
    }
    const m = /^datasource_list: \[(.*)\]/m.exec(cfg);
    const datasources = m ? (m[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean) : null;
    return { status: r.status, datasources, cfg, log: r.stderr };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
