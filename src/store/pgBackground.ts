// The PostgreSQL store's bookkeeping writes, which no caller waits for (a boot's begin, a host's
// version), and the queue that keeps a boot's writes in the order they were made: a begin, its
// first request and its events must not overtake each other on the way to the database. A failed
// write is logged (only at debug while the store is known to be down: the feed said so once) and
// counted through the fault listeners (the store_errors_total counter), never thrown. Writes that
// wait in the queue behind one another may go as one batch (one transaction), in the order made.

import { describe } from '../errors.js';
import type { Logger } from '../log.js';

/** Boot writes waiting in the queue past which new bookkeeping is dropped (and counted), not queued. */
const MAX_QUEUED = 10_000;

/** Writes one batch takes at most: a transaction that stays short, and a failure that costs few. */
export const MAX_BATCH = 500;

/** A batch in the queue: its items, each with the settling of the promise its maker holds. */
interface Batch {
  readonly run: unknown;
  readonly entries: { readonly item: unknown; resolve(): void; reject(e: unknown): void }[];
}

export class Background {
  private readonly running = new Set<Promise<unknown>>();
  private readonly faultListeners: ((operation: string) => void)[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  private queuedCount = 0;
  /** The batch at the end of the queue that has not started: the one later items may still join. */
  private open: Batch | null = null;

  constructor(private readonly log: Logger, private readonly down: () => boolean) {}

  onFault(listener: (operation: string) => void): void {
    this.faultListeners.push(listener);
  }

  /** Whether the queue is too long to take more bookkeeping (the store is slow or down). */
  get full(): boolean {
    return this.queuedCount >= MAX_QUEUED;
  }

  /** Runs `fn` after every write queued before it; the promise settles as `fn`'s does. */
  queued<T>(fn: () => Promise<T>): Promise<T> {
    return this.enqueue(fn, () => 1);
  }

  private enqueue<T>(fn: () => Promise<T>, count: () => number): Promise<T> {
    // Nothing queued (or awaited, see idle) after a batch may join it: it would overtake that.
    this.open = null;
    this.queuedCount++;
    const p = this.tail.then(fn).finally(() => (this.queuedCount -= count()));
    this.tail = p.catch(() => undefined);
    this.track(this.tail);
    return p;
  }

  /**
   * Queues `item` to be written by `run`, which writes a whole batch at once and gives each item's
   * failure (null: written). It joins the batch at the end of the queue if that is `run`'s, has not
   * started and holds fewer than MAX_BATCH; else it starts one. So a batch holds the writes that
   * waited, in the order made, and nothing overtakes what was queued before it. The promise
   * settles as the item's write does.
   */
  batched<I>(item: I, run: (items: readonly I[]) => Promise<readonly unknown[]>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const entry = { item, resolve, reject };
      if (this.open?.run === run && this.open.entries.length < MAX_BATCH) {
        this.queuedCount++;
        this.open.entries.push(entry);
        return;
      }
      const batch: Batch = { run, entries: [entry] };
      void this.enqueue(async () => {
        if (this.open === batch) this.open = null;
        const { entries } = batch;
        const failures = await run(entries.map((e) => e.item as I)).catch((e: unknown) => entries.map(() => e));
        entries.forEach((e, i) => (failures[i] ? e.reject(failures[i]) : e.resolve()));
      }, () => batch.entries.length);
      this.open = batch;
    });
  }

  /** Resolves (never rejects) once every write queued so far is done. */
  idle(): Promise<void> {
    this.open = null;
    return this.tail.then(() => undefined);
  }

  /** Runs `fn` with nobody waiting: a failure is logged and counted. */
  detached(operation: string, fn: () => Promise<unknown>): void {
    this.track(fn().catch((e: unknown) => this.failed(operation, e)));
  }

  /** Notes a bookkeeping write that failed, or was dropped, without passing the error on. */
  failed(operation: string, e: unknown): void {
    for (const l of this.faultListeners) l(operation);
    const fields = { operation, error: describe(e) };
    if (this.down()) this.log.debug('a bookkeeping write to the store failed', fields);
    else this.log.warn('a bookkeeping write to the store failed', fields);
  }

  private track(p: Promise<unknown>): void {
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  /** Resolves once the writes issued so far are done. */
  async settled(): Promise<void> {
    await Promise.all([...this.running]);
  }
}
