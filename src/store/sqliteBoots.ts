// The SQLite store's provisioning part: each instance's current boot and its cloud-init events,
// in the `boots` and `boot_events` tables (schema version 4). SqliteStore hands its calls here.

import type Database from 'better-sqlite3';
import type { BootEvent, BootRecord } from './store.js';

interface BootRow {
  boot: number;
  began: number;
  first_request: number | null;
}

interface EventRow {
  received: number;
  kind: BootEvent['kind'];
  name: string;
  result: string | null;
  description: string;
}

export class SqliteBoots {
  private readonly q;

  constructor(private readonly db: Database.Database) {
    this.q = {
      boot: db.prepare<[string], BootRow>('SELECT boot, began, first_request FROM boots WHERE uuid = ?'),
      events: db.prepare<[string], EventRow>('SELECT received, kind, name, result, description FROM boot_events WHERE uuid = ? ORDER BY seq'),
      // Only for a uuid that has an instance: a boot of a deleted VM must not linger.
      begin: db.prepare<[{ uuid: string; at: number; first: number | null }]>(
        `INSERT INTO boots (uuid, boot, began, first_request) SELECT uuid, 1, @at, @first FROM instances WHERE uuid = @uuid
         ON CONFLICT(uuid) DO UPDATE SET boot = boot + 1, began = excluded.began, first_request = excluded.first_request`,
      ),
      dropEvents: db.prepare<[string]>('DELETE FROM boot_events WHERE uuid = ?'),
      markFirst: db.prepare<[number, string]>('UPDATE boots SET first_request = ? WHERE uuid = ? AND first_request IS NULL'),
      hasBoot: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM boots WHERE uuid = ?'),
      insertEvent: db.prepare<[string, number, string, string, string | null, string]>(
        'INSERT INTO boot_events (uuid, received, kind, name, result, description) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      // Everything older than the instance's `keep` newest events (OFFSET keep is the one before them).
      trim: db.prepare<[string, string, number]>(
        `DELETE FROM boot_events WHERE uuid = ? AND seq <= (
           SELECT seq FROM boot_events WHERE uuid = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`,
      ),
    };
  }

  bootRecord(uuid: string): BootRecord | undefined {
    const b = this.q.boot.get(uuid);
    if (!b) return undefined;
    return { boot: b.boot, began: b.began, firstRequest: b.first_request, events: this.q.events.all(uuid) };
  }

  beginBoot(uuid: string, at: number, firstRequest: number | null): void {
    this.db.transaction(() => {
      this.q.begin.run({ uuid, at, first: firstRequest });
      this.q.dropEvents.run(uuid);
    })();
  }

  markFirstRequest(uuid: string, at: number): void {
    if (this.q.hasBoot.get(uuid)) this.q.markFirst.run(at, uuid);
    else this.q.begin.run({ uuid, at, first: at });
  }

  appendBootEvents(batch: ReadonlyMap<string, readonly BootEvent[]>, keep: number): void {
    this.db.transaction(() => {
      for (const [uuid, events] of batch) {
        if (!this.q.hasBoot.get(uuid)) this.q.begin.run({ uuid, at: events[0]?.received ?? Date.now(), first: null });
        if (!this.q.hasBoot.get(uuid)) continue;
        for (const e of events.slice(-keep)) this.q.insertEvent.run(uuid, e.received, e.kind, e.name, e.result, e.description);
        this.q.trim.run(uuid, uuid, keep);
      }
    })();
  }
}
