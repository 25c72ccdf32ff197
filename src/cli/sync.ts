// `mdserver sync`: registers every domain libvirt knows (running or not), for a fresh database on a
// host that already has VMs. Domains without an interface on the metadata network are skipped.
//
// Domains are fetched by uuid, never by name: a name is chosen by whoever defines the domain, and
// virsh would read one such as `--domain=other` as an option and dump another domain instead.

import { execFile } from 'node:child_process';
import { adminRequest, COMMON_HELP, CommandError, err, errorMessage, out, parseOptionsOnly, resolveSocket } from './common.js';

export const SYNC_USAGE = `Usage: mdserver sync [--connect URI] [options]

Uploads the XML of every domain that 'virsh list --all' shows to the running server.
Options:
      --connect URI  the libvirt connection (default: virsh's own, usually qemu:///system)
${COMMON_HELP}`;

function virsh(uri: string | undefined, args: string[]): Promise<string> {
  const full = uri ? ['-c', uri, ...args] : args;
  return new Promise((resolve, reject) => {
    execFile('virsh', full, { maxBuffer: 64 * 1024 * 1024, timeout: 60000 }, (e, stdout, stderr) => {
      if (e) {
        const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'virsh is not installed (Debian: libvirt-clients)' : stderr.trim() || e.message;
        reject(new CommandError(`virsh ${full.join(' ')} failed: ${why}`));
      } else resolve(stdout);
    });
  });
}

/** What `virsh list --uuid` prints for a domain; anything else is never passed to virsh. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function syncCommand(args: string[]): Promise<number> {
  const p = parseOptionsOnly(args, SYNC_USAGE, { connect: { type: 'string' } });
  if (!p) return 0;
  const uri = typeof p.values['connect'] === 'string' ? p.values['connect'] : undefined;
  const socket = resolveSocket(p);
  const uuids = (await virsh(uri, ['list', '--all', '--uuid'])).split('\n').map((s) => s.trim()).filter(Boolean);
  const count = { registered: 0, updated: 0, skipped: 0, failed: 0 };
  for (const uuid of uuids) {
    if (!UUID.test(uuid)) {
      err(`failed     ${JSON.stringify(uuid)}: virsh listed something that is not a domain uuid`);
      count.failed++;
      continue;
    }
    let xml: string;
    try {
      // `--` ends virsh's options, so nothing after it is read as one.
      xml = await virsh(uri, ['dumpxml', '--', uuid]);
    } catch (e) {
      // The domain may have been undefined since the listing; that is not a reason to stop.
      err(`failed     ${uuid}: ${(e as Error).message}`);
      count.failed++;
      continue;
    }
    const r = await adminRequest(socket, 'POST', '/instances', xml);
    const b = r.body as { error?: string; instance?: { name: string; ipv4: string | null } };
    if (r.status === 201 || r.status === 200) {
      const what = r.status === 201 ? 'registered' : 'updated';
      count[what]++;
      out(`${what.padEnd(10)} ${b.instance?.name ?? uuid} ${b.instance?.ipv4 ?? ''}`.trimEnd());
    } else if (b.error === 'NO_MDS_INTERFACE') {
      count.skipped++;
      out(`skipped    ${uuid}: ${errorMessage(r.body)}`);
    } else {
      count.failed++;
      err(`failed     ${uuid}: ${errorMessage(r.body)}`);
    }
  }
  out(`${uuids.length} domain(s): ${count.registered} registered, ${count.updated} updated, ${count.skipped} skipped, ${count.failed} failed`);
  return count.failed > 0 ? 1 : 0;
}
