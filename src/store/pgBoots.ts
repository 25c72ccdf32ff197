// The boots and boot_events tables of the PostgreSQL store (schema version 2): each instance's
// current boot and its last events, how a catch-up reads their changes, and the statements of
// each write. The transaction around them and the change counter are postgres.ts's; the in-memory
// copy is bootReplica.ts's. Every statement that writes a boot stamps it with the change's
// version, and so does one that writes its events, so a catch-up reads both.

import type pg from 'pg';
import type { BootHeader, BootReplica, BootState, SeqEvent } from './bootReplica.js';
import type { FeedTable } from './pgFeed.js';
import { prepared } from './pgPrepared.js';
import type { BootEvent } from './store.js';

interface BootRow {
  uuid: string;
  boot: number;
  began: string;
  first_request: string | null;
  next_seq: string;
  first_seq: string;
}

interface EventRow {
  uuid: string;
  seq: string;
  received: string;
  kind: BootEvent['kind'];
  name: string;
  result: string | null;
  description: string;
}

/** A change to one boot, applied to the in-memory copy once it is committed. */
export interface BootChange {
  readonly boot: BootState;
}

const toHeader = (r: BootRow): BootHeader => ({
  boot: r.boot, began: Number(r.began), firstRequest: r.first_request === null ? null : Number(r.first_request),
  nextSeq: Number(r.next_seq), firstSeq: Number(r.first_seq),
});

const toEvent = (r: EventRow): SeqEvent => ({
  seq: Number(r.seq), event: { received: Number(r.received), kind: r.kind, name: r.name, result: r.result, description: r.description },
});

const EVENT_COLUMNS = 'uuid, seq, received, kind, name, result, description';

/** Reads the boots and their events written after a change counter (all of them on a resync), to apply to `boots`. */
export function bootsFeed(boots: BootReplica): FeedTable {
  return {
    statements: ['SELECT * FROM boots WHERE version > $1', `SELECT ${EVENT_COLUMNS} FROM boot_events WHERE version > $1 ORDER BY uuid, seq`],
    apply([heads, added], gone, resync) {
      const rows = (heads?.rows ?? []) as (BootRow & { version: string })[];
      const events = (added?.rows ?? []) as EventRow[];
      return () => {
        for (const t of gone) boots.remove(t.uuid, Number(t.version));
        for (const r of rows) boots.apply({ uuid: r.uuid, header: toHeader(r), events: [] }, Number(r.version));
        for (const [uuid, list] of byUuid(events)) boots.addEvents(uuid, list);
        if (resync !== null) boots.retainOnly(new Set(rows.map((r) => r.uuid)), resync);
      };
    },
  };
}

function byUuid(rows: readonly EventRow[]): Map<string, SeqEvent[]> {
  const out = new Map<string, SeqEvent[]>();
  for (const r of rows) {
    const list = out.get(r.uuid);
    if (list) list.push(toEvent(r));
    else out.set(r.uuid, [toEvent(r)]);
  }
  return out;
}

/** A boot's begin (`firstRequest` set or null) or its first request (`firstRequest` undefined), for one instance. */
export interface BootWrite {
  readonly uuid: string;
  readonly at: number;
  readonly firstRequest?: number | null;
}

/** New boot rows for the instances of $1 (at $2, first request $3, version $4), those unknown to the database left out, in uuid order (the rows are locked in that order). */
const NEW_BOOTS = `INSERT INTO boots (uuid, boot, began, first_request, next_seq, first_seq, version)
  SELECT i.uuid, 1, u.at, u.first, 0, 0, $4 FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u (uuid, at, first)
  JOIN instances i ON i.uuid = u.uuid ORDER BY i.uuid`;

const BEGIN_BOOTS = prepared('mds_begin_boots', `WITH b AS (${NEW_BOOTS} ON CONFLICT (uuid) DO UPDATE SET boot = boots.boot + 1,
    began = excluded.began, first_request = excluded.first_request, first_seq = boots.next_seq, version = excluded.version RETURNING *),
  d AS (DELETE FROM boot_events e USING b WHERE e.uuid = b.uuid AND e.seq < b.first_seq)
  SELECT * FROM b`);

const FIRST_REQUESTS = prepared('mds_first_requests', `${NEW_BOOTS} ON CONFLICT (uuid) DO UPDATE SET first_request = excluded.first_request,
  version = excluded.version WHERE boots.first_request IS NULL RETURNING *`);

const asArrays = (ops: readonly BootWrite[], first: (w: BootWrite) => number | null): unknown[] =>
  [ops.map((w) => w.uuid), ops.map((w) => w.at), ops.map(first)];

const changed = (rows: readonly BootRow[]): BootChange[] => rows.map((r) => ({ boot: { uuid: r.uuid, header: toHeader(r), events: [] } }));

/**
 * Begins a new boot of each instance of `ops` (distinct uuids), dropping the last one's events,
 * in one statement; instances unknown to the database are skipped. The DELETE reads the events
 * as of the statement's start: one another host appended while this waited for the boot's row
 * lock is left below `first_seq`, where no reader looks, and goes with the next begin or append.
 */
export async function beginBoots(c: pg.ClientBase, ops: readonly BootWrite[], version: number): Promise<BootChange[]> {
  const rows = (await c.query<BootRow>(BEGIN_BOOTS.query([...asArrays(ops, (w) => w.firstRequest ?? null), version]))).rows;
  return changed(rows);
}

/** Notes the first request of each current boot of `ops` (distinct uuids), beginning one where there is none; only the boots that changed come back. */
export async function markFirstRequests(c: pg.ClientBase, ops: readonly BootWrite[], version: number): Promise<BootChange[]> {
  const rows = (await c.query<BootRow>(FIRST_REQUESTS.query([...asArrays(ops, (w) => w.at), version]))).rows;
  return changed(rows);
}

/** What an append does to one boot: the events it adds, numbered, and the boot's new bounds. */
interface Appended {
  readonly uuid: string;
  readonly events: SeqEvent[];
  readonly next: number;
  readonly first: number;
}

/** Numbers the last `keep` of `events` after the boot's own, and moves its bounds to keep only the last `keep`. */
function numbered(head: BootRow, events: readonly BootEvent[], keep: number): Appended {
  const start = Number(head.next_seq);
  const added = (keep > 0 ? events.slice(-keep) : []).map((event, i) => ({ seq: start + i, event }));
  const next = start + added.length;
  return { uuid: head.uuid, events: added, next, first: Math.max(Number(head.first_seq), next - Math.max(keep, 0)) };
}

/** The events of `appended` as columns of arrays, for one INSERT from unnest. */
function columns(appended: readonly Appended[], version: number): unknown[] {
  const all = appended.flatMap((a) => a.events.map((e) => ({ uuid: a.uuid, seq: e.seq, ...e.event })));
  return [
    all.map((e) => e.uuid), all.map((e) => e.seq), all.map((e) => e.received), all.map((e) => e.kind),
    all.map((e) => e.name), all.map((e) => e.result), all.map((e) => e.description), version,
  ];
}

/**
 * Appends each instance's events to its current boot (beginning one where there is none) and
 * drops all but the last `keep`, in five statements whatever the size of the batch. Instances
 * unknown to the database are skipped.
 */
export async function appendBootEvents(
  c: pg.ClientBase, batch: ReadonlyMap<string, readonly BootEvent[]>, keep: number, version: number,
): Promise<BootChange[]> {
  const uuids = [...batch.keys()];
  const began = uuids.map((u) => batch.get(u)?.[0]?.received ?? Date.now());
  await c.query(
    `INSERT INTO boots (uuid, boot, began, first_request, next_seq, first_seq, version)
     SELECT i.uuid, 1, b.at, NULL, 0, 0, $3 FROM unnest($1::text[], $2::bigint[]) AS b (uuid, at) JOIN instances i ON i.uuid = b.uuid
     ON CONFLICT (uuid) DO NOTHING`, [uuids, began, version]);
  const heads = (await c.query<BootRow>('SELECT * FROM boots WHERE uuid = ANY($1::text[]) FOR UPDATE', [uuids])).rows;
  if (heads.length === 0) return [];
  const appended = heads.map((h) => numbered(h, batch.get(h.uuid) ?? [], keep));
  await c.query(
    `INSERT INTO boot_events (${EVENT_COLUMNS}, version)
     SELECT *, $8::bigint FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])`,
    columns(appended, version));
  const bounds = [appended.map((a) => a.uuid), appended.map((a) => a.next), appended.map((a) => a.first)];
  const rows = (await c.query<BootRow>(
    `UPDATE boots b SET next_seq = u.next, first_seq = u.first, version = $4
     FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u (uuid, next, first) WHERE b.uuid = u.uuid RETURNING b.*`,
    [...bounds, version])).rows;
  await c.query(
    'DELETE FROM boot_events e USING unnest($1::text[], $2::bigint[]) AS u (uuid, first) WHERE e.uuid = u.uuid AND e.seq < u.first',
    [bounds[0], bounds[2]]);
  const added = new Map(appended.map((a) => [a.uuid, a.events]));
  return rows.map((r) => ({ boot: { uuid: r.uuid, header: toHeader(r), events: added.get(r.uuid) ?? [] } }));
}

/**
 * Stamps the boot and events of `uuid` (just moved there by a rekey: the foreign keys carried
 * them) with `version`, so that the other hosts read them under the new uuid; null for none.
 */
export async function restampBoot(c: pg.ClientBase, uuid: string, version: number): Promise<BootChange | null> {
  const row = (await c.query<BootRow>('UPDATE boots SET version = $2 WHERE uuid = $1 RETURNING *', [uuid, version])).rows[0];
  if (!row) return null;
  const events = (await c.query<EventRow>(`UPDATE boot_events SET version = $2 WHERE uuid = $1 RETURNING ${EVENT_COLUMNS}`, [uuid, version])).rows;
  return { boot: { uuid, header: toHeader(row), events: events.map(toEvent).sort((a, b) => a.seq - b.seq) } };
}
