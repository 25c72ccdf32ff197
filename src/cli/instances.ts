// `mdserver instances list | show NAME | delete NAME | rekey NAME --uuid UUID`: the registered
// VMs of a running server.

import type { InstanceJson, RekeyJson } from '../admin/protocol.js';
import { adminRequest, COMMON_HELP, CommandError, errorMessage, out, parseCommand, resolveSocket, type Parsed } from './common.js';
import { formatTable } from './table.js';

export const INSTANCES_USAGE = `Usage: mdserver instances list [--json] [options]
       mdserver instances show NAME [--json] [options]
       mdserver instances delete NAME [options]
       mdserver instances rekey NAME --uuid UUID [--json] [options]

Deleting frees the instance's address and removes it from dnsmasq's files at once.
An upload whose name is an instance's but whose uuid is not is refused (a new VM must not take
over an old one's address and instance id). When the domain was defined again under a new uuid
(as the ec2 style needs), rekey moves its record to that uuid, keeping its address and instance
id; when it is another VM, delete the old record first.
NWFILTER is the libvirt network filter on the VM's interface: NONE (or NOT TRUSTED, when it is
not one of [mdserver] trusted_filters) means another VM could copy its MAC and address and read
its data.
Options:
      --json         print JSON, for scripts
      --uuid UUID    the domain's new uuid (rekey)
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

const ACTIONS: Record<string, { needsName: boolean; method: string }> = {
  list: { needsName: false, method: 'GET' },
  show: { needsName: true, method: 'GET' },
  delete: { needsName: true, method: 'DELETE' },
  rekey: { needsName: true, method: 'POST' },
};

/** The action and instance name, or a usage error (exit status 2). */
function parseAction(p: Parsed): { action: string; name: string | undefined } {
  const [action, name, ...rest] = p.positionals;
  const spec = action === undefined ? undefined : ACTIONS[action];
  const uuidGiven = typeof p.values['uuid'] === 'string';
  if (!action || !spec || rest.length > 0 || (spec.needsName ? !name : name !== undefined) || uuidGiven !== (action === 'rekey')) {
    throw new CommandError(`expected list, show NAME, delete NAME or rekey NAME --uuid UUID\n${INSTANCES_USAGE}`, 2);
  }
  return { action, name };
}

function printList(list: InstanceJson[], json: boolean): void {
  if (json) {
    out(JSON.stringify(list, null, 2));
    return;
  }
  out(formatTable(
    ['NAME', 'IPV4', 'MAC', 'UUID', 'HOST', 'LAST UPDATE', 'NWFILTER'],
    list.map((i) => [i.name, i.ipv4 ?? '-', i.mac, i.uuid, i.host || '-', i.lastUpdate, filterColumn(i)]),
  ) + `${list.length} instance(s)`);
}

function printOne(action: string, body: unknown, json: boolean): void {
  if (json) out(JSON.stringify(body, null, 2));
  else if (action === 'show') out(show(body as InstanceJson));
  else if (action === 'delete') {
    const i = body as InstanceJson;
    out(`deleted ${i.name} (${i.ipv4 ?? 'no address'}, ${i.mac}); its address is free again`);
  } else {
    const { previousUuid, instance: i } = body as RekeyJson;
    out(previousUuid === i.uuid
      ? `${i.name} already has uuid ${i.uuid}; nothing changed`
      : `moved ${i.name} from uuid ${previousUuid} to ${i.uuid}; it keeps ${i.ipv4 ?? 'no address'} and its instance id`);
  }
}

export async function instancesCommand(args: string[]): Promise<number> {
  const p = parseCommand(args, { json: { type: 'boolean' }, uuid: { type: 'string' } });
  if (p.values['help']) {
    out(INSTANCES_USAGE);
    return 0;
  }
  const { action, name } = parseAction(p);
  const json = p.values['json'] === true;
  const socket = resolveSocket(p);
  if (action === 'list') {
    const r = await adminRequest(socket, 'GET', '/instances');
    if (r.status !== 200) throw new CommandError(errorMessage(r.body));
    printList(r.body as InstanceJson[], json);
    return 0;
  }
  const target = `/instances/${encodeURIComponent(name as string)}`;
  const r = action === 'rekey'
    ? await adminRequest(socket, 'POST', `${target}/rekey`, JSON.stringify({ uuid: p.values['uuid'] }), 'application/json')
    : await adminRequest(socket, (ACTIONS[action] as { method: string }).method, target);
  if (r.status !== 200) throw new CommandError(errorMessage(r.body));
  printOne(action, r.body, json);
  return 0;
}
