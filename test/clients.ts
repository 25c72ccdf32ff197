// Test support for the real clients: where they are, whether they can run here, and how to run
// cloud-init's EC2 datasource inside a VM namespace.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers.js';
import { netnsUnavailable } from './netns.js';
import { MDS_URL, type Vm } from './vmnet.js';

/** Debian's python, which sees Debian's cloud-init package (a python on PATH may not). */
export const SYSTEM_PYTHON = '/usr/bin/python3';
const DRIVER = fileURLToPath(new URL('../../test/clients/ec2_datasource.py', import.meta.url));

/** Why the named clients cannot run here, or null. */
function clientsUnavailable(needs: { cloudInit?: boolean; tools?: string[] }): string | null {
  const why = netnsUnavailable(['curl', ...(needs.tools ?? [])]);
  if (why) return why;
  if (needs.cloudInit) {
    const r = spawnSync(SYSTEM_PYTHON, ['-c', 'import cloudinit.sources.DataSourceEc2'], { stdio: 'ignore' });
    if (r.status !== 0) return "needs Debian's cloud-init package (python3 -c 'import cloudinit')";
  }
  return null;
}

/**
 * The skip option for tests that drive real clients in namespaces: they skip on a machine that
 * lacks root, the namespace tools or the client, and fail under CI=true, where all must be present.
 */
export function skipUnlessClients(needs: { cloudInit?: boolean; tools?: string[] }): { skip: string | false } {
  const why = clientsUnavailable(needs);
  if (why && process.env['CI'] === 'true') throw new Error(`client tests cannot run under CI: ${why}`);
  return { skip: why ?? false };
}

/** What cloud-init's DataSourceEc2 concluded (see test/clients/ec2_datasource.py). */
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
    const env = pythonPath ? [`PYTHONPATH=${pythonPath}`] : [];
    const r = vm.ns.try('env', [...env, SYSTEM_PYTHON, DRIVER, platform, MDS_URL, work, 'eth0'], undefined, 180000);
    if (r.status !== 0) throw new Error(`the cloud-init driver failed (${r.status}):\n${r.stderr.slice(-6000)}`);
    return { ...(JSON.parse(r.stdout) as Omit<DatasourceResult, 'log'>), log: r.stderr };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
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
