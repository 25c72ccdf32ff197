// The instances table of the PostgreSQL store: its rows, how a catch-up reads their changes, and
// the checks and statements of one registration. The transaction around them, the change counter
// and the connection are postgres.ts's; the in-memory copy is instanceIndex.ts's.

import type pg from 'pg';
import { MdsError } from '../errors.js';
import { safeHostName } from '../names.js';
import { addressTaken, hostNameTaken, macTaken, nameTaken, renameTaken, uuidElsewhere } from './conflicts.js';
import type { InstanceIndex } from './instanceIndex.js';
import type { FeedTable } from './pgFeed.js';
import { rowToInstance, type InstanceRow } from './rows.js';
import { hostKey } from './schema.js';
import type { Allocate, Instance, NewInstance, Registration, RegisterResult } from './store.js';

export interface PgRow extends InstanceRow {
  version: string | number;
}

export const toInstance = (r: PgRow): Instance => rowToInstance(r);

/** A change made inside a transaction, applied to the in-memory copy once it is committed. */
export type LocalChange = { put: Instance } | { remove: string };

/** Reads the instances and tombstones written after `seen`, to apply to `index`. */
export function instancesFeed(index: InstanceIndex): FeedTable {
  return {
    async read(client, seen) {
      const gone = await client.query<{ uuid: string; version: string }>('SELECT uuid, version FROM tombstones WHERE version > $1', [seen]);
      const rows = await client.query<PgRow>('SELECT * FROM instances WHERE version > $1', [seen]);
      return () => {
        for (const t of gone.rows) index.rows.remove(t.uuid, Number(t.version));
        for (const r of rows.rows) index.rows.put(r.uuid, Number(r.version), toInstance(r));
      };
    },
  };
}

const INSERT = `INSERT INTO instances (uuid, name, host_key, mac, ipv4, ipv6, location, metadata, arch, nwfilter, host, first_seen, last_update, version)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`;

/** Inserts a record as it is (a copy from another database), stamped with `version`. */
export async function insertRow(c: pg.ClientBase, r: NewInstance, version: number): Promise<void> {
  await c.query(INSERT, [r.uuid, r.name, hostKey(r.name, r.uuid), r.mac, r.ipv4, r.ipv6, r.location, JSON.stringify(r.metadata),
    r.arch, r.nwfilter, r.host ?? '', r.firstSeen, r.lastUpdate, version]);
}

/** What one registration needs besides the connection. */
export interface RegisterContext {
  readonly version: number;
  readonly allocate: Allocate;
  /** Whether an address belongs to a stored instance or to one registered earlier in the group. */
  readonly isUsed: (ipv4: string) => boolean;
}

/** The refusal, in SQLite's words, of a registration that conflicts with the rows it touches. */
function refusal(reg: Registration, rows: readonly PgRow[], existing: PgRow | undefined): MdsError | null {
  if (!existing) {
    const sameName = rows.find((r) => r.name === reg.name);
    if (sameName) return nameTaken(reg, sameName);
  }
  const macOwner = rows.find((r) => r.mac === reg.mac);
  if (macOwner && (!existing || macOwner.uuid !== existing.uuid)) return macTaken(reg, macOwner);
  const elsewhere = existing && uuidElsewhere(reg, existing);
  if (elsewhere) return elsewhere;
  const nameOwner = existing && existing.name !== reg.name ? rows.find((r) => r.name === reg.name) : undefined;
  if (nameOwner) return renameTaken(reg, nameOwner);
  const key = hostKey(reg.name, reg.uuid);
  if (existing && hostKey(existing.name, existing.uuid) === key) return null;
  const holder = rows.find((r) => hostKey(r.name, r.uuid) === key && r.uuid !== (existing?.uuid ?? reg.uuid));
  return holder ? hostNameTaken(reg, holder) : null;
}

/**
 * Registers `reg` inside the caller's transaction (and savepoint): the rows it could conflict
 * with are read and locked first, so the checks see what is committed, not the in-memory copy.
 */
export async function registerOne(c: pg.ClientBase, reg: Registration, ctx: RegisterContext): Promise<RegisterResult> {
  const key = hostKey(reg.name, reg.uuid);
  const { rows } = await c.query<PgRow>(
    'SELECT * FROM instances WHERE uuid = $1 OR name = $2 OR mac = $3 OR host_key = $4 FOR UPDATE', [reg.uuid, reg.name, reg.mac, key]);
  const existing = rows.find((r) => r.uuid === reg.uuid);
  const refused = refusal(reg, rows, existing);
  if (refused) throw refused;
  const ipv4 = existing?.ipv4 ?? ctx.allocate(ctx.isUsed);
  if (ipv4 === null) throw new MdsError('POOL_EXHAUSTED', `no free address left for domain ${reg.name}`);
  if (!existing && ctx.isUsed(ipv4)) throw addressTaken(reg, ipv4);
  const now = Date.now();
  const metadata = JSON.stringify(reg.metadata);
  const nwfilter = reg.nwfilter ?? null;
  const host = reg.host ?? '';
  if (!existing) {
    const row = { name: reg.name, uuid: reg.uuid, mac: reg.mac, location: reg.location, arch: reg.arch, metadata: reg.metadata, nwfilter, host, ipv4, ipv6: null, firstSeen: now, lastUpdate: now };
    await insertRow(c, row, ctx.version);
    return { instance: { ...row, hostName: safeHostName(reg.name, reg.uuid) }, created: true, changed: true };
  }
  const changed = existing.name !== reg.name || existing.mac !== reg.mac || existing.metadata !== metadata || existing.arch !== reg.arch ||
    existing.location !== reg.location || existing.nwfilter !== nwfilter || existing.host !== host;
  const row: PgRow = { ...existing, name: reg.name, mac: reg.mac, location: reg.location, metadata, arch: reg.arch, nwfilter, host, last_update: now };
  if (!changed) {
    // A repeat is no change to replicate: it only notes when the domain was last seen.
    await c.query('UPDATE instances SET last_update = $2 WHERE uuid = $1', [reg.uuid, now]);
    return { instance: toInstance({ ...existing, last_update: now }), created: false, changed };
  }
  await c.query(
    `UPDATE instances SET name = $2, host_key = $3, mac = $4, location = $5, metadata = $6, arch = $7, nwfilter = $8, host = $9,
     last_update = $10, version = $11 WHERE uuid = $1`,
    [reg.uuid, reg.name, key, reg.mac, reg.location, metadata, reg.arch, nwfilter, host, now, ctx.version]);
  return { instance: toInstance(row), created: false, changed };
}
