// The PostgreSQL store's bookkeeping writes, which no caller waits for (a boot's begin, a host's
// version), and the queue that keeps a boot's writes in the order they were made: a begin, its
// first request and its events must not overtake each other on the way to the database. A failed
// write is logged (only at debug while the store is known to be down: the feed said so once) and
// counted through the fault listeners (the store_errors_total counter), never thrown.

import { describe } from '../errors.js';
import type { Logger } from '../log.js';

/** Boot writes waiting in the queue past which new bookkeeping is dropped (and counted), not queued. */
const MAX_QUEUED = 10_000;

export class Background {
  private readonly running = new Set<Promise<unknown>>();
  private readonly faultListeners: ((operation: string) => void)[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  private queuedCount = 0;

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
    this.queuedCount++;
    const p = this.tail.then(fn).finally(() => this.queuedCount--);
    this.tail = p.catch(() => undefined);
    this.track(this.tail);
    return p;
  }

  /** Resolves (never rejects) once every write queued so far is done. */
  idle(): Promise<void> {
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
