// The boots of a replicated store, held in memory: each instance's current boot (a header kept
// current from the change counter, see replica.ts) and its events, so that `bootRecord` never
// waits on the network. A boot's begin and its first request are bookkeeping written in the
// background: until that write is committed, it is held here as pending and laid over the copy,
// so that this host reads what it just did. Pure: no I/O.

import { Replica } from './replica.js';
import type { BootEvent, BootRecord } from './store.js';

/** A boot as its row holds it: the events numbered from `firstSeq` up to before `nextSeq` are current. */
export interface BootHeader {
  readonly boot: number;
  readonly began: number;
  readonly firstRequest: number | null;
  readonly nextSeq: number;
  readonly firstSeq: number;
}

/** An event and its number among its instance's events. */
export interface SeqEvent {
  readonly seq: number;
  readonly event: BootEvent;
}

/** A boot's begin or first request, not committed yet; `version` is its change's once it has one. */
export type PendingBoot =
  | { readonly kind: 'begin'; readonly at: number; readonly firstRequest: number | null; version?: number }
  | { readonly kind: 'first'; readonly at: number; version?: number };

/** What one change does to a boot: its header as committed, and the events it added. */
export interface BootState {
  readonly uuid: string;
  readonly header: BootHeader;
  readonly events: readonly SeqEvent[];
}

/** `record` with `op` laid over it, as the store would have it once the op is committed. */
function laidOver(record: BootRecord | undefined, op: PendingBoot): BootRecord {
  if (op.kind === 'begin') return { boot: (record?.boot ?? 0) + 1, began: op.at, firstRequest: op.firstRequest, events: [] };
  if (!record) return { boot: 1, began: op.at, firstRequest: op.at, events: [] };
  return record.firstRequest === null ? { ...record, firstRequest: op.at } : record;
}

export class BootReplica {
  /** Each instance's events, ordered by `seq`. */
  private readonly events = new Map<string, SeqEvent[]>();
  private readonly pending = new Map<string, PendingBoot[]>();
  private readonly headers = new Replica<BootHeader>((uuid, _before, after) => {
    const list = this.events.get(uuid);
    if (!list) return;
    const kept = after ? list.filter((e) => e.seq >= after.firstSeq && e.seq < after.nextSeq) : [];
    if (kept.length === 0) this.events.delete(uuid);
    else if (kept.length !== list.length) this.events.set(uuid, kept);
  });

  /** `exists(uuid)`: whether the instance is known, so that a pending op of a deleted one is not read. */
  constructor(private readonly exists: (uuid: string) => boolean) {}

  /** The current boot of `uuid`: the copy, with the pending ops not in it yet laid over it. */
  record(uuid: string): BootRecord | undefined {
    const h = this.headers.get(uuid);
    let record: BootRecord | undefined = h && {
      boot: h.boot, began: h.began, firstRequest: h.firstRequest, events: (this.events.get(uuid) ?? []).map((e) => e.event),
    };
    const ops = this.pending.get(uuid);
    if (!ops || !this.exists(uuid)) return record;
    const held = this.headers.versionOf(uuid);
    for (const op of ops) if (op.version === undefined || op.version > held) record = laidOver(record, op);
    return record;
  }

  /** Applies a committed change as of `version` (from this host's write or a catch-up). */
  apply(state: BootState, version: number): void {
    this.headers.put(state.uuid, version, state.header);
    this.addEvents(state.uuid, state.events);
  }

  /** Adds events of the boot held for `uuid`; those it no longer counts as current are ignored. */
  addEvents(uuid: string, events: readonly SeqEvent[]): void {
    const h = this.headers.get(uuid);
    if (!h) return;
    let list = this.events.get(uuid);
    for (const e of events) {
      if (e.seq < h.firstSeq || e.seq >= h.nextSeq) continue;
      if (!list) this.events.set(uuid, (list = []));
      const last = list[list.length - 1];
      if (!last || last.seq < e.seq) {
        list.push(e);
        continue;
      }
      const at = list.findIndex((x) => x.seq >= e.seq);
      if (list[at]?.seq !== e.seq) list.splice(at, 0, e);
    }
  }

  /** The instance `uuid` was deleted or rekeyed away at `version`: its boot goes. */
  remove(uuid: string, version: number): void {
    this.headers.remove(uuid, version);
  }

  /** After a full read: the boots of instances not in `uuids` are gone as of `version`. */
  retainOnly(uuids: ReadonlySet<string>, version: number): void {
    this.headers.retainOnly(uuids, version);
  }

  prune(seen: number): void {
    this.headers.prune(seen);
  }

  /** Holds `op` over the copy until `settle(uuid, op)`. */
  hold(uuid: string, op: PendingBoot): void {
    const ops = this.pending.get(uuid);
    if (ops) ops.push(op);
    else this.pending.set(uuid, [op]);
  }

  /** `op` was committed (and applied) or failed: it is no longer laid over the copy. */
  settle(uuid: string, op: PendingBoot): void {
    const ops = this.pending.get(uuid);
    if (!ops) return;
    const i = ops.indexOf(op);
    if (i >= 0) ops.splice(i, 1);
    if (ops.length === 0) this.pending.delete(uuid);
  }
}
