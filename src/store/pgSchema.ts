// The PostgreSQL store's schema: each version's migration, applied by whichever mdserver starts
// first. Several hosts may start at once, so the whole check-and-migrate runs under one advisory
// lock: the others wait for it and then find the schema current.
//
// Every change to a replicated table bumps the one row of `cluster` (the change counter) and
// stamps the rows it writes with the new value; a deletion leaves a tombstone with it. Taking that
// row's lock orders all writing transactions (each takes it only for its last step, pgWrite.ts),
// so a reader that has seen counter N has seen every change up to N, and catches up from there
// after a reconnect; or reads everything, when tombstones after N were pruned (`pruned`).

import type pg from 'pg';
import { MdsError } from '../errors.js';

export const PG_SCHEMA_VERSION = 3;

/** The advisory lock key of schema migrations ("mdserver" in ASCII, as a bigint). */
const MIGRATION_LOCK = '7882552127354463602';

const MIGRATIONS: Record<number, string> = {
  1: `
    CREATE TABLE mdserver_schema (version integer NOT NULL);
    INSERT INTO mdserver_schema (version) VALUES (0);
    CREATE TABLE cluster (id integer PRIMARY KEY CHECK (id = 1), counter bigint NOT NULL);
    INSERT INTO cluster (id, counter) VALUES (1, 0);
    CREATE TABLE instances (
      uuid text PRIMARY KEY,
      name text NOT NULL CONSTRAINT instances_name_key UNIQUE,
      host_key text NOT NULL CONSTRAINT instances_host_key_key UNIQUE,
      mac text NOT NULL CONSTRAINT instances_mac_key UNIQUE,
      ipv4 text CONSTRAINT instances_ipv4_key UNIQUE,
      ipv6 text CONSTRAINT instances_ipv6_key UNIQUE,
      location text NOT NULL DEFAULT '',
      metadata text NOT NULL DEFAULT '{}',
      arch text,
      nwfilter text,
      host text NOT NULL DEFAULT '',
      first_seen bigint NOT NULL,
      last_update bigint NOT NULL,
      version bigint NOT NULL
    );
    CREATE INDEX instances_version ON instances (version);
    CREATE TABLE tombstones (uuid text PRIMARY KEY, version bigint NOT NULL);
    CREATE INDEX tombstones_version ON tombstones (version);
    CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE locations (
      name text PRIMARY KEY,
      hostname text NOT NULL,
      version text NOT NULL,
      first_seen bigint NOT NULL,
      last_seen bigint NOT NULL
    );
  `,
  // Each instance's current boot and its last events, and its one-time password: they follow the
  // instance's uuid (a rekey moves them, a deletion removes them, and its tombstone tells the other
  // hosts). A boot numbers its instance's events in `seq` from `next_seq`; those below `first_seq`
  // are gone (a new boot, or more than the last ones kept), so the header says which are current.
  // A deleted password keeps its row with a null password: the row is its own tombstone.
  2: `
    CREATE TABLE boots (
      uuid text PRIMARY KEY REFERENCES instances (uuid) ON UPDATE CASCADE ON DELETE CASCADE,
      boot integer NOT NULL,
      began bigint NOT NULL,
      first_request bigint,
      next_seq bigint NOT NULL,
      first_seq bigint NOT NULL,
      version bigint NOT NULL
    );
    CREATE INDEX boots_version ON boots (version);
    CREATE TABLE boot_events (
      uuid text NOT NULL REFERENCES boots (uuid) ON UPDATE CASCADE ON DELETE CASCADE,
      seq bigint NOT NULL,
      received bigint NOT NULL,
      kind text NOT NULL,
      name text NOT NULL,
      result text,
      description text NOT NULL,
      version bigint NOT NULL,
      PRIMARY KEY (uuid, seq)
    );
    CREATE INDEX boot_events_version ON boot_events (version);
    CREATE TABLE passwords (
      uuid text PRIMARY KEY REFERENCES instances (uuid) ON UPDATE CASCADE ON DELETE CASCADE,
      password text,
      expires bigint NOT NULL,
      version bigint NOT NULL
    );
    CREATE INDEX passwords_version ON passwords (version);
  `,
  // Tombstones are pruned after a while (pgInstances.ts pruneTombstones): each says when its
  // instance was deleted (those from before this version count as deleted now), and `pruned` is
  // the highest version pruned, below which a catch-up would miss deletions.
  3: `
    ALTER TABLE tombstones ADD COLUMN deleted_at bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint;
    CREATE INDEX tombstones_deleted_at ON tombstones (deleted_at);
    ALTER TABLE cluster ADD COLUMN pruned bigint NOT NULL DEFAULT 0;
  `,
};

/** Brings the database `client` is connected to up to PG_SCHEMA_VERSION. */
export async function migratePg(client: pg.ClientBase, where: string): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    const exists = await client.query<{ t: string | null }>(`SELECT to_regclass('mdserver_schema')::text AS t`);
    let current = 0;
    if (exists.rows[0]?.t) current = (await client.query<{ version: number }>('SELECT version FROM mdserver_schema')).rows[0]?.version ?? 0;
    if (current > PG_SCHEMA_VERSION) {
      throw new MdsError('DB_FORMAT', `${where} has schema version ${current}; this mdserver knows up to ${PG_SCHEMA_VERSION}`);
    }
    for (let v = current + 1; v <= PG_SCHEMA_VERSION; v++) {
      await client.query(MIGRATIONS[v] as string);
      await client.query('UPDATE mdserver_schema SET version = $1', [v]);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}
