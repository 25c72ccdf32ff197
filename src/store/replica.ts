// An in-memory copy of one replicated table, kept current from the change counter (see
// pgSchema.ts): every row carries the counter value of the change that wrote it, and a change is
// applied only if it is newer than what the copy holds. So the same change may arrive twice (once
// from the writer's own commit, once from a catch-up) and in either order, and an old one never
// undoes a newer one. Pure: no I/O, which is the feed's job (pgFeed.ts).

/** Told of every applied change: the value before (none for a new row) and after (none when deleted). */
export type OnChange<V> = (key: string, before: V | undefined, after: V | undefined) => void;

export class Replica<V> {
  private readonly rows = new Map<string, { version: number; value: V }>();
  /** Deleted keys and the version of their deletion, until the counter seen passes it. */
  private readonly gone = new Map<string, number>();
  /** Increases with every applied change. */
  generation = 0;

  constructor(private readonly onChange: OnChange<V> = () => undefined) {}

  private newer(key: string, version: number): boolean {
    const held = this.rows.get(key)?.version ?? this.gone.get(key) ?? -1;
    return version > held;
  }

  /** Applies `value` as of `version`; false when the copy already has that change or a newer one. */
  put(key: string, version: number, value: V): boolean {
    if (!this.newer(key, version)) return false;
    const before = this.rows.get(key)?.value;
    this.gone.delete(key);
    this.rows.set(key, { version, value });
    this.generation++;
    this.onChange(key, before, value);
    return true;
  }

  /** Applies the deletion of `key` at `version`. */
  remove(key: string, version: number): boolean {
    if (!this.newer(key, version)) return false;
    const before = this.rows.get(key)?.value;
    this.rows.delete(key);
    this.gone.set(key, version);
    if (before === undefined) return false;
    this.generation++;
    this.onChange(key, before, undefined);
    return true;
  }

  /**
   * Forgets deletions at or below `seen`: a change that old can no longer arrive except from a
   * catch-up, which reads rows as they are now.
   */
  prune(seen: number): void {
    for (const [key, version] of this.gone) if (version <= seen) this.gone.delete(key);
  }

  /**
   * Removes, as of `version`, every row whose key is not in `keys`: after a full read of the table,
   * what it no longer holds was deleted (its tombstone may be gone). A row written after that
   * read (a newer version) stays.
   */
  retainOnly(keys: ReadonlySet<string>, version: number): void {
    for (const key of [...this.rows.keys()]) if (!keys.has(key)) this.remove(key, version);
  }

  get(key: string): V | undefined {
    return this.rows.get(key)?.value;
  }

  /** The version of the change that wrote the row held for `key`; -1 when none is held. */
  versionOf(key: string): number {
    return this.rows.get(key)?.version ?? -1;
  }

  values(): IterableIterator<V> {
    const it = this.rows.values();
    return (function* () {
      for (const r of it) yield r.value;
    })();
  }

  get size(): number {
    return this.rows.size;
  }
}
