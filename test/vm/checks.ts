// What the real-VM tests share: the administrator's user-data template, which styles run, how a
// test learns what the hook registered, and how a failure is explained.

import { type Style } from './guest.js';
import { type VmHost, vmHostUnavailable } from './host.js';
import { poll } from './wait.js';

export const ALL_STYLES: readonly Style[] = ['ec2', 'openstack', 'nocloud', 'cloudstack'];

/** MDSERVER_VM_STYLES=nocloud,ec2 boots only those styles (all of them by default). */
export function selectedStyles(): Style[] {
  const env = process.env['MDSERVER_VM_STYLES'];
  if (!env) return [...ALL_STYLES];
  const wanted = env.split(',').map((x) => x.trim()).filter(Boolean);
  for (const w of wanted) if (!(ALL_STYLES as string[]).includes(w)) throw new Error(`MDSERVER_VM_STYLES: unknown style ${w} (expected ${ALL_STYLES.join(', ')})`);
  return wanted as Style[];
}

/** Why real VMs cannot run here, or null; under CI that is an error, not a reason to skip. */
export function vmsUnavailable(): string | null {
  const unavailable = vmHostUnavailable();
  if (unavailable && process.env['CI'] === 'true') throw new Error(`the real-VM tests cannot run under CI: ${unavailable}`);
  return unavailable;
}

export const RUNCMD_LOG = '/var/tmp/mdserver-runcmd';

// The administrator's user-data: what the built-in template does (host name, keys, /etc/hosts,
// cloud-init reporting its progress to mdserver), plus a runcmd that leaves a line per run, so
// the tests can tell first-boot modules ran once.
export const TEMPLATE = `#cloud-config
hostname: <%= it.hostname %>
fqdn: <%= it.hostname %>.localdomain
manage_etc_hosts: true
ssh_authorized_keys:
<% for (const key of Object.values(it.public_keys)) { %>  - <%= key %>
<% } %>reporting:
  mdserver: {type: webhook, endpoint: <%= it.yaml_quote(it.report_url) %>}
runcmd:
  - [sh, -c, 'echo "<%= it.name %> $(cat /proc/sys/kernel/random/boot_id)" >> ${RUNCMD_LOG}']
`;

/** What `mdserver instances show --json` says of a registered guest, as far as the tests read it. */
export interface Registered {
  name: string;
  mac: string;
  ipv4: string;
  ipv6: string;
}

/** Waits for the hook to register `name` and returns its record. */
export async function registered(host: VmHost, name: string): Promise<Registered> {
  let found: Registered | null = null;
  await poll(
    `the hook to register ${name}`,
    async () => {
      const r = await host.mdserver(['instances', 'show', name, '--json']);
      if (r.status !== 0) return false;
      found = JSON.parse(r.stdout) as Registered;
      return true;
    },
    60000,
  );
  return found as unknown as Registered;
}

/** Runs `body`; when it fails, prints the guest's console and the daemons' logs, then fails. */
export async function explained(host: VmHost, what: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    process.stderr.write(`\n=== ${what} failed: ${e instanceof Error ? e.message : String(e)}\n${host.diagnostics()}`);
    throw e;
  }
}

/** `s` as a literal inside a regular expression. */
export function re(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
