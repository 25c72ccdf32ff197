// `mdserver instances list | show NAME | delete NAME | rekey NAME --uuid UUID | password NAME`:
// the registered VMs of a running server.

import type { InstanceJson, RekeyJson } from '../admin/protocol.js';
import { generatePassword } from '../instances/passwords.js';
import { adminRequest, COMMON_HELP, CommandError, errorMessage, out, parseCommand, resolveSocket, type Parsed } from './common.js';
import { formatTable, printable } from './table.js';
import { DEFAULT_WAIT_SECONDS, waitCommand } from './wait.js';

export const INSTANCES_USAGE = `Usage: mdserver instances list [--json] [options]
       mdserver instances show NAME [--json] [options]
       mdserver instances delete NAME [options]
       mdserver instances rekey NAME --uuid UUID [--json] [options]
       mdserver instances wait NAME... [--timeout S] [--json] [options]
       mdserver instances password NAME [--generate] [options]

Deleting frees the instance's address and removes it from dnsmasq's files at once.
An upload whose name is an instance's but whose uuid is not is refused (a new VM must not take
over an old one's address and instance id). When the domain was defined again under a new uuid
(as the ec2 style needs), rekey moves its record to that uuid, keeping its address and instance
id; when it is another VM, delete the old record first.
NWFILTER is the libvirt network filter on the VM's interface: NONE (or NOT TRUSTED, when it is
not one of [mdserver] trusted_filters) means another VM could copy its MAC and address and read
its data.
STATUS is what the VM's cloud-init reported of its current boot: waiting (no metadata read
yet), no report (metadata read, no event: is reporting on?), booting: STAGE, ready 41s (from
the first metadata read to the end of modules-final), failed: MODULE. wait returns when every
named VM is ready or failed: exit status 0 all ready, 1 any failed, 2 timeout.
password sets a one-time password that the VM's CloudStack password client fetches once from
port 8080 ([cloudstack] enabled): read from standard input (one line), or with --generate a new
random one, printed. It is deleted when the VM acknowledges it or after [cloudstack] password_ttl;
show says "pending" meanwhile and never shows it.
Options:
      --json         print JSON, for scripts
      --uuid UUID    the domain's new uuid (rekey)
      --timeout S    how long wait waits (default ${DEFAULT_WAIT_SECONDS} s)
      --generate     make up the password and print it (password)
${COMMON_HELP}`;

function show(i: InstanceJson): string {
  const lines: [string, string][] = [];
  for (const [k, v] of Object.entries(i)) {
    if (k === 'metadata' || k === 'provisioning' || k === 'events') continue;
    lines.push([k, v === null ? '-' : typeof v === 'string' ? v : JSON.stringify(v)]);
  }
  for (const [k, v] of Object.entries(i.metadata)) lines.push([`metadata.${k}`, v]);
  if (i.provisioning) lines.push(['status', i.provisioning.text]);
  const w = Math.max(...lines.map(([k]) => k.length));
  return [...lines.map(([k, v]) => `${(k + ':').padEnd(w + 1)} ${printable(v)}`), ...timeline(i)].join('\n');
}

/** The current boot's events, one a line: time, event, result, description. */
function timeline(i: InstanceJson): string[] {
  const events = i.events ?? [];
  if (events.length === 0) return [];
  return ['', 'events of the current boot:', ...events.map((e) =>
    printable(`  ${e.at}  ${e.kind.padEnd(10)} ${e.name}${e.result ? ` ${e.result}` : ''}${e.description ? `: ${e.description}` : ''}`))];
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
  password: { needsName: true, method: 'POST' },
};

/** The action and instance name, or a usage error (exit status 2). */
function parseAction(p: Parsed): { action: string; name: string | undefined } {
  const [action, name, ...rest] = p.positionals;
  const spec = action === undefined ? undefined : ACTIONS[action];
  const uuidGiven = typeof p.values['uuid'] === 'string';
  if (!action || !spec || rest.length > 0 || (spec.needsName ? !name : name !== undefined) || uuidGiven !== (action === 'rekey')) {
    throw new CommandError(`expected list, show NAME, delete NAME, rekey NAME --uuid UUID or password NAME\n${INSTANCES_USAGE}`, 2);
  }
  return { action, name };
}

function printList(list: InstanceJson[], json: boolean): void {
  if (json) {
    out(JSON.stringify(list, null, 2));
    return;
  }
  // The IPv6 column only when the server serves IPv6 (some instance has an address).
  const v6 = list.some((i) => i.ipv6 !== null);
  out(formatTable(
    ['NAME', 'IPV4', ...(v6 ? ['IPV6'] : []), 'MAC', 'UUID', 'HOST', 'LAST UPDATE', 'NWFILTER', 'STATUS'],
    list.map((i) => [i.name, i.ipv4 ?? '-', ...(v6 ? [i.ipv6 ?? '-'] : []), i.mac, i.uuid, i.host || '-', i.lastUpdate, filterColumn(i), printable(i.provisioning?.text ?? '-')]),
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
  const p = parseCommand(args, { json: { type: 'boolean' }, uuid: { type: 'string' }, timeout: { type: 'string' }, generate: { type: 'boolean' } });
  if (p.values['help']) {
    out(INSTANCES_USAGE);
    return 0;
  }
  if (p.positionals[0] === 'wait') return waitCommand(p, p.positionals.slice(1), resolveSocket(p));
  if (p.values['timeout'] !== undefined) throw new CommandError(`--timeout is for wait\n${INSTANCES_USAGE}`, 2);
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
  if (action === 'password') return await setPassword(socket, target, p.values['generate'] === true);
  const r = action === 'rekey'
    ? await adminRequest(socket, 'POST', `${target}/rekey`, JSON.stringify({ uuid: p.values['uuid'] }), 'application/json')
    : await adminRequest(socket, (ACTIONS[action] as { method: string }).method, target);
  if (r.status !== 200) throw new CommandError(errorMessage(r.body));
  printOne(action, r.body, json);
  return 0;
}

/** Standard input up to its end, without the line end a shell's echo or here-string adds. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function setPassword(socket: string, target: string, generate: boolean): Promise<number> {
  const password = generate ? generatePassword() : await readStdin();
  const r = await adminRequest(socket, 'POST', `${target}/password`, password, 'text/plain');
  if (r.status !== 200) throw new CommandError(errorMessage(r.body));
  const i = r.body as InstanceJson;
  if (generate) out(password);
  else out(`password set for ${i.name}: pending until its VM fetches it`);
  return 0;
}
