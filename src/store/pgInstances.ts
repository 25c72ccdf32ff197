// The instances table of the PostgreSQL store: its rows, how a catch-up reads their changes, and
// the checks and statements of one registration. The transaction around them, the change counter
// and the connection are postgres.ts's; the in-memory copy is instanceIndex.ts's.

import pg from 'pg';
import { MdsError } from '../errors.js';
import { safeHostName } from '../names.js';
import { addressTaken, hostNameTaken, macTaken, nameTaken, renameTaken, uuidElsewhere } from './conflicts.js';
import type { InstanceIndex } from './instanceIndex.js';
import type { FeedTable } from './pgFeed.js';
import { prepared } from './pgPrepared.js';
import { rowToInstance, type InstanceRow } from './rows.js';
import { hostKey } from './schema.js';
import type { Allocate, Instance, NewInstance, Registration, RegisterResult } from './store.js';

export interface PgRow extends InstanceRow {
  version: string | number;
}

export const toInstance = (r: PgRow): Instance => rowToInstance(r);

/** A change made inside a transaction, applied to the in-memory copy once it is committed. */
export type LocalChange = { put: Instance } | { remove: string };

/** Reads the instances written after a change counter (all of them on a resync), to apply to `index`. */
export function instancesFeed(index: InstanceIndex): FeedTable {
  return {
    statements: ['SELECT * FROM instances WHERE version > $1'],
    apply([changed], gone, resync) {
      const rows = (changed?.rows ?? []) as PgRow[];
      return () => {
        for (const t of gone) index.rows.remove(t.uuid, Number(t.version));
        for (const r of rows) {
          const version = Number(r.version);
          // A host's own writes come back in its catch-ups, already applied at commit: not decoded again.
          if (index.rows.versionOf(r.uuid) < version) index.rows.put(r.uuid, version, toInstance(r));
        }
        if (resync !== null) index.rows.retainOnly(new Set(rows.map((r) => r.uuid)), resync);
      };
    },
  };
}

/** Leaves a tombstone for the instance `uuid`, deleted or rekeyed away, for the other hosts' catch-ups. */
export async function tombstone(c: pg.ClientBase, uuid: string, version: number): Promise<void> {
  await c.query(`INSERT INTO tombstones (uuid, version, deleted_at) VALUES ($1, $2, $3)
    ON CONFLICT (uuid) DO UPDATE SET version = excluded.version, deleted_at = excluded.deleted_at`, [uuid, version, Date.now()]);
}

/**
 * Removes the tombstones of deletions made before `before` (milliseconds since the epoch) and
 * raises `cluster.pruned` to the highest version removed: a host that has seen less than that
 * reads the whole store again instead of catching up (pgFeed.ts). Returns how many were removed.
 */
export async function pruneTombstones(c: pg.Pool, before: number): Promise<number> {
  const r = await c.query<{ n: string }>(`WITH d AS (DELETE FROM tombstones WHERE deleted_at < $1 RETURNING version),
    u AS (UPDATE cluster SET pruned = (SELECT max(version) FROM d) WHERE (SELECT max(version) FROM d) > pruned)
    SELECT count(*) AS n FROM d`, [before]);
  return Number(r.rows[0]?.n ?? 0);
}

/** The advisory lock space of addresses being claimed ("mdsa" in ASCII). */
export const ADDRESS_LOCKS = 1835299681;

const INSERT = `INSERT INTO instances (uuid, name, host_key, mac, ipv4, ipv6, location, metadata, arch, nwfilter, host, first_seen, last_update, version)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`;

const rowParams = (r: NewInstance, version: number): unknown[] => [r.uuid, r.name, hostKey(r.name, r.uuid), r.mac, r.ipv4, r.ipv6, r.location,
  JSON.stringify(r.metadata), r.arch, r.nwfilter, r.host ?? '', r.firstSeen, r.lastUpdate, version];

/** Inserts a record as it is (a copy from another database), stamped with `version`. */
export async function insertRow(c: pg.ClientBase, r: NewInstance, version: number): Promise<void> {
  await c.query(INSERT, rowParams(r, version));
}

/**
 * A new instance, in one statement: the rows it could conflict with (same uuid, name, MAC or host
 * name) are read and locked, and only when there are none is the row inserted, and only if its
 * address ($15) is not being claimed by another host's write that has not committed yet: the
 * address's advisory lock, held to the end of the transaction, says so without waiting. Waiting
 * instead would stall on the other write, and two hosts each waiting for an address the other one
 * holds would deadlock (PostgreSQL breaks that only after deadlock_timeout, a second). Distinct
 * addresses may share a lock (a hash): one is then skipped. A row another host committed meanwhile
 * under any unique key makes the insert do nothing rather than fail, so no savepoint is needed.
 * Answers the locked rows (one row of nulls when there are none) and whether it inserted.
 */
const CLAIMING_INSERT = prepared('mds_claiming_insert', `WITH held AS (SELECT * FROM instances WHERE uuid = $1 OR name = $2 OR mac = $4 OR host_key = $3 FOR UPDATE),
  ins AS (INSERT INTO instances (uuid, name, host_key, mac, ipv4, ipv6, location, metadata, arch, nwfilter, host, first_seen, last_update, version)
    SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text, $10::text, $11::text, $12::bigint, $13::bigint, $14::bigint
    WHERE NOT EXISTS (SELECT 1 FROM held) AND pg_try_advisory_xact_lock(${ADDRESS_LOCKS}, hashtext($15::text))
    ON CONFLICT DO NOTHING RETURNING 1)
  SELECT held.*, (SELECT count(*) FROM ins)::int AS inserted FROM (SELECT 1) AS one LEFT JOIN held ON true`);

const LOCK_ROWS = prepared('mds_lock_rows', 'SELECT * FROM instances WHERE uuid = $1 OR name = $2 OR mac = $3 OR host_key = $4 FOR UPDATE');
const SEEN = prepared('mds_seen', 'UPDATE instances SET last_update = $2 WHERE uuid = $1');
const UPDATE = prepared('mds_update', `UPDATE instances SET name = $2, host_key = $3, mac = $4, location = $5, metadata = $6, arch = $7, nwfilter = $8,
  host = $9, last_update = $10, version = $11 WHERE uuid = $1`);

/**
 * Another host's write took what this registration chose (its address, or a uuid, name or MAC
 * it committed first): the registration tries again, and then sees that row.
 */
class LostRace extends Error {
  constructor(readonly ipv4: string | null) {
    super(ipv4 === null ? 'another write took a key of this registration' : `address ${ipv4} is taken or being claimed by another write`);
  }
}

/** What one registration needs besides the connection. */
export interface RegisterContext {
  readonly version: number;
  readonly allocate: Allocate;
  /** Whether an address belongs to a stored instance or to one registered earlier in the group. */
  readonly isUsed: (ipv4: string) => boolean;
  /** Whether the copy holds an instance of that uuid (then it is most likely an update). */
  readonly known: (uuid: string) => boolean;
  /** Notes a uuid the copy holds that the database does not. */
  readonly forget: (uuid: string) => void;
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
 * Registers `reg` inside the caller's transaction: the rows it could conflict with are read and
 * locked first, so the checks see what is committed, not the in-memory copy. A uuid this host
 * does not know is most likely new, and is tried in one statement (CLAIMING_INSERT), which falls
 * back to the checks below when it finds rows in the way.
 */
export async function registerOne(c: pg.ClientBase, reg: Registration, ctx: RegisterContext): Promise<RegisterResult> {
  const key = hostKey(reg.name, reg.uuid);
  const now = Date.now();
  const metadata = JSON.stringify(reg.metadata);
  const nwfilter = reg.nwfilter ?? null;
  const host = reg.host ?? '';
  let rows: PgRow[];
  const fresh = ctx.known(reg.uuid) ? null : ctx.allocate(ctx.isUsed);
  if (fresh !== null) {
    if (ctx.isUsed(fresh)) throw addressTaken(reg, fresh);
    const row = { name: reg.name, uuid: reg.uuid, mac: reg.mac, location: reg.location, arch: reg.arch, metadata: reg.metadata, nwfilter, host, ipv4: fresh, ipv6: null, firstSeen: now, lastUpdate: now };
    const r = await c.query<PgRow & { inserted: number }>(CLAIMING_INSERT.query([...rowParams(row, ctx.version), fresh]));
    if (r.rows[0]?.inserted) return { instance: { ...row, hostName: safeHostName(reg.name, reg.uuid) }, created: true, changed: true };
    rows = r.rows.filter((x) => x.uuid !== null);
    // Nothing in the way, yet nothing inserted: the address is someone else's (or a key was
    // committed by another host after this statement's snapshot: the next try sees it).
    if (rows.length === 0) throw new LostRace(fresh);
  } else {
    rows = (await c.query<PgRow>(LOCK_ROWS.query([reg.uuid, reg.name, reg.mac, key]))).rows;
  }
  const existing = rows.find((r) => r.uuid === reg.uuid);
  const refused = refusal(reg, rows, existing);
  if (refused) throw refused;
  if (!existing) {
    // Known here but gone from the database (deleted meanwhile): the next try registers it as new.
    if (ctx.known(reg.uuid)) {
      ctx.forget(reg.uuid);
      throw new LostRace(null);
    }
    // Unknown, and no address was left for it.
    throw new MdsError('POOL_EXHAUSTED', `no free address left for domain ${reg.name}`);
  }
  const changed = existing.name !== reg.name || existing.mac !== reg.mac || existing.metadata !== metadata || existing.arch !== reg.arch ||
    existing.location !== reg.location || existing.nwfilter !== nwfilter || existing.host !== host;
  if (!changed) {
    // A repeat is no change to replicate: it only notes when the domain was last seen.
    await c.query(SEEN.query([reg.uuid, now]));
    return { instance: toInstance({ ...existing, last_update: now }), created: false, changed };
  }
  // A new name, MAC or host name may meet one another host committed after the rows were locked:
  // the unique constraint refuses it, and only this statement is undone.
  await c.query('SAVEPOINT reg');
  try {
    await c.query(UPDATE.query([reg.uuid, reg.name, key, reg.mac, reg.location, metadata, reg.arch, nwfilter, host, now, ctx.version]));
  } catch (e) {
    if (!(e instanceof pg.DatabaseError) || e.code !== '23505') throw e;
    await c.query('ROLLBACK TO SAVEPOINT reg');
    throw new LostRace(null);
  }
  const row: PgRow = { ...existing, name: reg.name, mac: reg.mac, location: reg.location, metadata, arch: reg.arch, nwfilter, host, last_update: now };
  return { instance: toInstance(row), created: false, changed };
}

/** How often one registration is tried again after another host's write took what it chose. */
const RACE_RETRIES = 8;

/**
 * A registration that lost every try: other hosts' writes kept taking what it chose. Nothing of it
 * was stored; the uploader may try again (503, as for a store that cannot be reached).
 */
function busy(e: LostRace): MdsError {
  return new MdsError('STORE_UNAVAILABLE', `the instance store is busy: other hosts' writes took what this upload chose ${RACE_RETRIES + 1} times in a row (${e.message}); nothing was stored, try again`, { cause: e });
}

export interface GroupResult {
  readonly outcomes: (RegisterResult | Error)[];
  readonly changes: LocalChange[];
}

/**
 * Registers each of `group` inside the caller's transaction, each in a savepoint so that one
 * refusal leaves the others. Addresses are chosen from the in-memory copy (`inCopy`), which may
 * lag another host's commit by a moment: the unique constraint then refuses the row, and the
 * registration is tried again with that address counted as used. A registration that raced
 * another host's for the same uuid, name or MAC is tried again too, and then finds that row.
 */
export async function registerGroup(
  c: pg.ClientBase, group: readonly Registration[], version: number, allocate: Allocate, inCopy: (ipv4: string) => boolean,
  known: (uuid: string) => boolean,
): Promise<GroupResult> {
  const given = new Set<string>();
  // uuids the copy holds that the database turned out not to (deleted meanwhile).
  const gone = new Set<string>();
  const ctx: RegisterContext = {
    version,
    isUsed: (ip) => given.has(ip) || inCopy(ip),
    allocate,
    known: (uuid) => !gone.has(uuid) && known(uuid),
    forget: (uuid) => gone.add(uuid),
  };
  const outcomes: (RegisterResult | Error)[] = [];
  const changes: LocalChange[] = [];
  for (const reg of group) {
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await registerOne(c, reg, ctx);
        if (r.instance.ipv4) given.add(r.instance.ipv4);
        if (r.changed) changes.push({ put: r.instance });
        outcomes.push(r);
        break;
      } catch (e) {
        // Anything else the database said ended the transaction: the whole write fails (and a
        // deadlock is retried whole, see pgWrite.ts).
        if (!(e instanceof LostRace) && !(e instanceof MdsError)) throw e;
        if (e instanceof LostRace && attempt < RACE_RETRIES) {
          // The address it chose is someone else's, or may be: the next try chooses another.
          if (e.ipv4 !== null) given.add(e.ipv4);
          continue;
        }
        outcomes.push(e instanceof LostRace ? busy(e) : e);
        break;
      }
    }
  }
  return { outcomes, changes };
}
