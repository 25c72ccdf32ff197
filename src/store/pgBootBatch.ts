// A batch of boot bookkeeping (begins and first requests, as they waited in the queue behind one
// another, see pgBackground.ts) written in one transaction: one stamp and one commit for the
// batch instead of one each, so the other hosts run one catch-up for it. Inside, the writes go as
// few statements as their order allows: writes of distinct instances touch distinct rows and may
// share one statement; those of one instance keep the order they were made in.

import { MdsError } from '../errors.js';
import type { PendingBoot } from './bootReplica.js';
import { beginBoots, markFirstRequests, type BootChange, type BootWrite } from './pgBoots.js';
import type pg from 'pg';

/** One queued write: the op held over the in-memory copy until it is settled (`version` is set at commit). */
export interface QueuedBoot {
  readonly uuid: string;
  readonly op: PendingBoot;
}

/**
 * Splits `items` (in the order made) into statements, in the order they are to run: each holds
 * writes of one kind for distinct instances, and a write goes into the first statement of its
 * kind after the one holding its instance's write before it, so no write passes an earlier one of
 * its instance (nor shares a statement with one). Begins and first requests of many instances,
 * interleaved, take two statements.
 */
export function statements(items: readonly QueuedBoot[]): QueuedBoot[][] {
  const out: { kind: PendingBoot['kind']; items: QueuedBoot[] }[] = [];
  const last = new Map<string, number>();
  for (const item of items) {
    let at = (last.get(item.uuid) ?? -1) + 1;
    while (at < out.length && out[at]?.kind !== item.op.kind) at++;
    const slot = out[at] ?? { kind: item.op.kind, items: [] };
    if (at === out.length) out.push(slot);
    slot.items.push(item);
    last.set(item.uuid, at);
  }
  return out.map((s) => s.items);
}

const asWrite = ({ uuid, op }: QueuedBoot): BootWrite => (op.kind === 'begin' ? { uuid, at: op.at, firstRequest: op.firstRequest } : { uuid, at: op.at });

/**
 * Runs the statements of `items` on `c`, stamped with `mark`; the boots they changed, each as its
 * last statement left it: the copy takes one change per boot and version, and all of a batch's
 * have the same. Unknown instances are skipped.
 */
export async function writeBoots(c: pg.ClientBase, items: readonly QueuedBoot[], mark: number): Promise<BootChange[]> {
  const changes = new Map<string, BootChange>();
  for (const s of statements(items)) {
    const writes = s.map(asWrite);
    for (const ch of await (s[0]?.op.kind === 'begin' ? beginBoots(c, writes, mark) : markFirstRequests(c, writes, mark))) changes.set(ch.boot.uuid, ch);
  }
  return [...changes.values()];
}

/**
 * Writes `items` with `write` (one transaction) and gives each one's failure (null: written). The
 * store out of reach fails them all; a refusal by the database is one write's doing, which must
 * not cost the others theirs: each is then tried alone.
 */
export async function eachOutcome(items: readonly QueuedBoot[], write: (some: readonly QueuedBoot[]) => Promise<void>): Promise<unknown[]> {
  try {
    await write(items);
    return items.map(() => null);
  } catch (e) {
    if (items.length === 1 || (e instanceof MdsError && e.code === 'STORE_UNAVAILABLE')) return items.map(() => e);
    const out: unknown[] = [];
    for (const item of items) out.push(await write([item]).then(() => null, (x: unknown) => x));
    return out;
  }
}
