// The refusals every backend gives in the same words: a registration that would take a name,
// MAC, host name or uuid another record has. Kept apart so that SQLite and PostgreSQL tell the
// operator the same thing.

import { MdsError } from '../errors.js';
import { safeHostName } from '../names.js';
import type { Registration } from './store.js';

/** What a refusal says of the record that holds the contested value. */
export interface Holder {
  readonly name: string;
  readonly uuid: string;
  readonly ipv4: string | null;
}

/**
 * A domain that is not the registered one by its uuid, under that one's name: a new VM reusing
 * the name must not inherit the old one's address and instance id, so the host decides.
 */
export function nameTaken(reg: Pick<Registration, 'name' | 'uuid'>, holder: Holder): MdsError {
  return new MdsError(
    'CONFLICT',
    `name ${reg.name} of domain ${reg.uuid} already belongs to the instance of domain ${holder.uuid} (address ${holder.ipv4 ?? 'none'}), ` +
      `which is left as it is: if this is that VM defined again, move its record to the new uuid (mdserver instances rekey ${reg.name} --uuid ${reg.uuid}); ` +
      `otherwise delete the old record first (mdserver instances delete ${reg.name})`,
  );
}

export function macTaken(reg: Pick<Registration, 'name' | 'uuid' | 'mac'>, holder: Holder): MdsError {
  return new MdsError('CONFLICT', `MAC ${reg.mac} of domain ${reg.name} (${reg.uuid}) already belongs to domain ${holder.name} (${holder.uuid})`);
}

/**
 * A known uuid registered by another host under another MAC. A live migration keeps every MAC
 * (libvirt refuses a destination whose interface differs), so this is not the VM moving but
 * another domain given its uuid, which would take its address and instance id from under it.
 * Null when it may go on: the same host, the same MAC, or a record or registration naming no host.
 */
export function uuidElsewhere(reg: Pick<Registration, 'name' | 'uuid' | 'mac' | 'host'>, existing: Holder & { readonly mac: string; readonly host: string }): MdsError | null {
  if (!reg.host || !existing.host || existing.host === reg.host || existing.mac === reg.mac) return null;
  return new MdsError(
    'CONFLICT',
    `uuid ${reg.uuid} of domain ${reg.name} (MAC ${reg.mac}) is registered by host ${existing.host} as ${existing.name} with MAC ${existing.mac} ` +
      `(address ${existing.ipv4 ?? 'none'}), which is left as it is: a migration keeps the MAC; if that domain really moved with a new MAC, ` +
      `register the new MAC on ${existing.host} first, or delete its record (mdserver instances delete ${existing.name})`,
  );
}

/** A known domain renamed onto the name of another. */
export function renameTaken(reg: Pick<Registration, 'name' | 'uuid'>, holder: Holder): MdsError {
  return new MdsError('CONFLICT', `name ${reg.name} of domain ${reg.uuid} already belongs to domain ${holder.uuid}`);
}

export function hostNameTaken(reg: Pick<Registration, 'name' | 'uuid'>, holder: Holder): MdsError {
  return new MdsError(
    'CONFLICT',
    `host name ${safeHostName(reg.name, reg.uuid)} of domain ${reg.name} (${reg.uuid}) is already the host name of domain ${holder.name} (${holder.uuid}): ` +
      'DNS names ignore case, and characters other than letters, digits and "-" become "-"',
  );
}

export function uuidTaken(uuid: string, holder: Holder): MdsError {
  return new MdsError('CONFLICT', `uuid ${uuid} already belongs to the instance ${holder.name}`);
}

/** An allocator that handed out an address a record already has. */
export function addressTaken(reg: Pick<Registration, 'name' | 'uuid'>, ipv4: string): MdsError {
  return new MdsError('CONFLICT', `address ${ipv4} chosen for domain ${reg.name} (${reg.uuid}) already belongs to another instance`);
}
