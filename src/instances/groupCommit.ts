// Commits work in groups: everything submitted in the same turn of the event loop is handed to
// one commit, and each submitter learns its own outcome.
//
// Why: with SQLite's synchronous=FULL the fsync is most of an upload's cost (about 3 ms of the
// 5 ms an upload took here, doc/benchmarks.md); a group shares one, so a host that starts hundreds
// of domains at once registers them several times faster, while every acknowledgement still means
// the record is on disk. A lone upload (the qemu hook's usual case) waits only for the next check
// phase of the event loop.

interface Waiting<I, O> {
  item: I;
  resolve: (outcome: O) => void;
  reject: (e: Error) => void;
}

/**
 * `commit` stores a group and returns each item's outcome, in order: its result, or the Error
 * that refused that item alone. A commit that throws or rejects fails the whole group.
 */
export type CommitGroup<I, O> = (items: readonly I[]) => Promise<readonly (O | Error)[]>;

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

export class GroupCommit<I, O> {
  private waiting: Waiting<I, O>[] = [];
  private committing = false;

  constructor(private readonly commit: CommitGroup<I, O>) {}

  /** Resolves to `item`'s outcome once the group holding it is committed. */
  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.waiting.length === 1 && !this.committing) this.schedule();
    });
  }

  private schedule(): void {
    setImmediate(() => void this.commitWaiting());
  }

  private async commitWaiting(): Promise<void> {
    const group = this.waiting;
    this.waiting = [];
    // One commit at a time: with a backend that answers later (over a network), what arrives
    // meanwhile gathers into the next group instead of racing this one.
    this.committing = true;
    let outcomes: readonly (O | Error)[] | Error;
    try {
      outcomes = await this.commit(group.map((w) => w.item));
    } catch (e) {
      outcomes = asError(e);
    }
    this.committing = false;
    if (this.waiting.length > 0) this.schedule();
    group.forEach((w, i) => {
      const o = outcomes instanceof Error ? outcomes : (outcomes[i] ?? new Error('the commit gave no outcome for this item'));
      if (o instanceof Error) w.reject(o);
      else w.resolve(o);
    });
  }
}
