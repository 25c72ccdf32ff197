// `mdserver instances list | show NAME | delete NAME`: the registered VMs of a running server.

import type { InstanceJson } from '../admin/protocol.js';
import { adminRequest, COMMON_HELP, CommandError, errorMessage, out, parseCommand, resolveSocket } from './common.js';
import { formatTable } from './table.js';

export const INSTANCES_USAGE = `Usage: mdserver instances list [--json] [options]
       mdserver instances show NAME [--json] [options]
       mdserver instances delete NAME [options]

Deleting frees the instance's address and removes it from dnsmasq's files at once. NWFILTER is
the libvirt network filter on the VM's interface: NONE (or NOT TRUSTED, when it is not one of
[mdserver] trusted_filters) means another VM could copy its MAC and address and read its data.
Options:
      --json         print JSON, for scripts
${COMMON_HELP}`;

function show(i: InstanceJson): string {
  const lines: [string, string][] = [];
  for (const [k, v] of Object.entries(i)) {
    if (k === 'metadata') continue;
    lines.push([k, v === null ? '-' : typeof v === 'string' ? v : JSON.stringify(v)]);
  }
  for (const [k, v] of Object.entries(i.metadata)) lines.push([`metadata.${k}`, v]);
  const w = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${(k + ':').padEnd(w + 1)} ${v}`).join('\n');
}

/** The filter as the admin should read it: its name, and whether it is trusted to stop spoofing. */
function filterColumn(i: InstanceJson): string {
  if (i.nwfilter === null) return 'NONE';
  return i.filtered ? i.nwfilter : `${i.nwfilter} (NOT TRUSTED)`;
}

export async function instancesCommand(args: string[]): Promise<number> {
  const p = parseCommand(args, { json: { type: 'boolean' } });
  if (p.values['help']) {
    out(INSTANCES_USAGE);
    return 0;
  }
  const [action, name, ...rest] = p.positionals;
  const needsName = action === 'show' || action === 'delete';
  if (!action || !['list', 'show', 'delete'].includes(action) || (needsName ? !name || rest.length > 0 : name !== undefined)) {
    throw new CommandError(`expected list, show NAME or delete NAME\n${INSTANCES_USAGE}`, 2);
  }
  const json = p.values['json'] === true;
  const socket = resolveSocket(p);
  if (action === 'list') {
    const r = await adminRequest(socket, 'GET', '/instances');
    if (r.status !== 200) throw new CommandError(errorMessage(r.body));
    const list = r.body as InstanceJson[];
    if (json) out(JSON.stringify(list, null, 2));
    else {
      out(formatTable(
        ['NAME', 'IPV4', 'MAC', 'UUID', 'LAST UPDATE', 'NWFILTER'],
        list.map((i) => [i.name, i.ipv4 ?? '-', i.mac, i.uuid, i.lastUpdate, filterColumn(i)]),
      ) + `${list.length} instance(s)`);
    }
    return 0;
  }
  const target = `/instances/${encodeURIComponent(name as string)}`;
  const r = await adminRequest(socket, action === 'show' ? 'GET' : 'DELETE', target);
  if (r.status !== 200) throw new CommandError(errorMessage(r.body));
  const i = r.body as InstanceJson;
  if (json) out(JSON.stringify(i, null, 2));
  else if (action === 'show') out(show(i));
  else out(`deleted ${i.name} (${i.ipv4 ?? 'no address'}, ${i.mac}); its address is free again`);
  return 0;
}
