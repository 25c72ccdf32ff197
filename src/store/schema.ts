// The SQLite file's schema: each version's migration, and the one rule a migration shares with
// the store (what makes two host names one DNS name).

import type Database from 'better-sqlite3';
import { MdsError } from '../errors.js';
import { safeHostName } from '../names.js';

export const SCHEMA_VERSION = 6;

/** What makes two host names the same name in DNS: case does not count. */
export function hostKey(name: string, uuid: string): string {
  return safeHostName(name, uuid).toLowerCase();
}

/** A migration is SQL, or a step that needs the host-name rule, which only JavaScript has. */
type Migration = string | ((db: Database.Database) => void);

const MIGRATIONS: Record<number, Migration> = {
  1: `
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE instances (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      uuid TEXT NOT NULL UNIQUE,
      mac TEXT NOT NULL UNIQUE,
      ipv4 TEXT UNIQUE,
      ipv6 TEXT UNIQUE,
      location TEXT NOT NULL DEFAULT '',
      metadata TEXT NOT NULL DEFAULT '{}',
      arch TEXT,
      first_seen INTEGER NOT NULL,
      last_update INTEGER NOT NULL
    );
    CREATE TABLE locations (
      name TEXT PRIMARY KEY,
      hostname TEXT NOT NULL,
      version TEXT NOT NULL,
      first_seen INTEGER NOT NULL,
      last_seen INTEGER NOT NULL
    );
  `,
  // The DNS form of each name, indexed, so that a registration can be refused when another
  // instance already answers to its host name. Not UNIQUE: a database from before the rule may
  // hold such pairs, and they must keep working (see Store.hostEntries).
  2: (db) => {
    db.exec(`ALTER TABLE instances ADD COLUMN host_key TEXT NOT NULL DEFAULT '';
             CREATE INDEX instances_host_key ON instances (host_key);`);
    const set = db.prepare<[string, number]>('UPDATE instances SET host_key = ? WHERE id = ?');
    for (const r of db.prepare<[], { id: number; name: string; uuid: string }>('SELECT id, name, uuid FROM instances').all()) {
      set.run(hostKey(r.name, r.uuid), r.id);
    }
  },
  // The nwfilter of the metadata interface (tenant isolation): null for records made before it.
  3: `ALTER TABLE instances ADD COLUMN nwfilter TEXT;`,
  // Provisioning status: each instance's current boot and its cloud-init events. Keyed by uuid and
  // following the instance's record (a rekey moves them, a delete removes them).
  4: `
    CREATE TABLE boots (
      uuid TEXT PRIMARY KEY REFERENCES instances (uuid) ON UPDATE CASCADE ON DELETE CASCADE,
      boot INTEGER NOT NULL,
      began INTEGER NOT NULL,
      first_request INTEGER
    );
    CREATE TABLE boot_events (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      uuid TEXT NOT NULL REFERENCES boots (uuid) ON UPDATE CASCADE ON DELETE CASCADE,
      received INTEGER NOT NULL,
      kind TEXT NOT NULL,
      name TEXT NOT NULL,
      result TEXT,
      description TEXT NOT NULL
    );
    CREATE INDEX boot_events_uuid ON boot_events (uuid, seq);
  `,
  // CloudStack-style one-time passwords, one per instance, gone with the instance; `expires` is
  // milliseconds since the epoch.
  5: `CREATE TABLE passwords (
        instance_id INTEGER PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
        password TEXT NOT NULL,
        expires INTEGER NOT NULL
      );`,
  // The host that last registered each record ([store] host_name): empty for those made before.
  6: `ALTER TABLE instances ADD COLUMN host TEXT NOT NULL DEFAULT '';`,
};

/** Brings the database in `file` up to SCHEMA_VERSION, one transaction per version. */
export function migrate(db: Database.Database, file: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new MdsError('DB_FORMAT', `${file} has schema version ${current}; this mdserver knows up to ${SCHEMA_VERSION}`);
  }
  for (let v = current + 1; v <= SCHEMA_VERSION; v++) {
    db.transaction(() => {
      const step = MIGRATIONS[v] as Migration;
      if (typeof step === 'string') db.exec(step);
      else step(db);
      db.pragma(`user_version = ${v}`);
    })();
  }
}
