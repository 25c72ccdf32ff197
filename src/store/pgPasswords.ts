// The passwords table of the PostgreSQL store (schema version 2): each instance's one-time
// password, keyed by its uuid (so it follows a rename, and a rekey through the foreign key), how a
// catch-up reads its changes, and the statements of each write. A deleted or purged password keeps
// its row with a null password, stamped with the change's version: that is its tombstone, and it
// goes with the instance. The in-memory copy is a Replica of the passwords set, by uuid.
// A password is never logged: nothing here logs, and it is only ever a parameter of a statement.

import type pg from 'pg';
import type { FeedTable } from './pgFeed.js';
import type { Replica } from './replica.js';

export interface StoredPassword {
  readonly password: string;
  /** Milliseconds since the epoch. */
  readonly expires: number;
}

/** A password set (`value`) or deleted (null) for the instance `uuid`, applied once committed. */
export interface PasswordChange {
  readonly password: { readonly uuid: string; readonly value: StoredPassword | null };
}

interface PasswordRow {
  uuid: string;
  password: string | null;
  expires: string;
}

const toChange = (r: PasswordRow): PasswordChange => ({
  password: { uuid: r.uuid, value: r.password === null ? null : { password: r.password, expires: Number(r.expires) } },
});

/** Applies a committed change to `rows` as of `version`. */
export function applyPassword(rows: Replica<StoredPassword>, ch: PasswordChange, version: number): void {
  if (ch.password.value) rows.put(ch.password.uuid, version, ch.password.value);
  else rows.remove(ch.password.uuid, version);
}

/** Reads the passwords written after a change counter (all of them on a resync), to apply to `rows`. */
export function passwordsFeed(rows: Replica<StoredPassword>): FeedTable {
  return {
    statements: ['SELECT uuid, password, expires, version FROM passwords WHERE version > $1'],
    apply([result], gone, resync) {
      const changed = (result?.rows ?? []) as (PasswordRow & { version: string })[];
      return () => {
        for (const t of gone) rows.remove(t.uuid, Number(t.version));
        for (const r of changed) applyPassword(rows, toChange(r), Number(r.version));
        if (resync !== null) rows.retainOnly(new Set(changed.filter((r) => r.password !== null).map((r) => r.uuid)), resync);
      };
    },
  };
}

/** Sets the password of the instance named `name`; null when there is none. */
export async function setPassword(c: pg.ClientBase, name: string, password: string, expires: number, version: number): Promise<PasswordChange | null> {
  const row = (await c.query<PasswordRow>(
    `INSERT INTO passwords (uuid, password, expires, version) SELECT uuid, $2, $3, $4 FROM instances WHERE name = $1
     ON CONFLICT (uuid) DO UPDATE SET password = excluded.password, expires = excluded.expires, version = excluded.version
     RETURNING uuid, password, expires`, [name, password, expires, version])).rows[0];
  return row ? toChange(row) : null;
}

/** Deletes the password of the instance named `name`; null when it had none. */
export async function deletePassword(c: pg.ClientBase, name: string, version: number): Promise<PasswordChange | null> {
  const row = (await c.query<PasswordRow>(
    `UPDATE passwords p SET password = NULL, version = $2 FROM instances i
     WHERE i.uuid = p.uuid AND i.name = $1 AND p.password IS NOT NULL RETURNING p.uuid, p.password, p.expires`, [name, version])).rows[0];
  return row ? toChange(row) : null;
}

/** Deletes every password expired by `now`. */
export async function purgePasswords(c: pg.ClientBase, now: number, version: number): Promise<PasswordChange[]> {
  const rows = (await c.query<PasswordRow>(
    'UPDATE passwords SET password = NULL, version = $2 WHERE password IS NOT NULL AND expires <= $1 RETURNING uuid, password, expires',
    [now, version])).rows;
  return rows.map(toChange);
}

/** Stamps the password row of `uuid` (just moved there by a rekey) with `version`; null for none. */
export async function restampPassword(c: pg.ClientBase, uuid: string, version: number): Promise<PasswordChange | null> {
  const row = (await c.query<PasswordRow>('UPDATE passwords SET version = $2 WHERE uuid = $1 RETURNING uuid, password, expires', [uuid, version])).rows[0];
  return row ? toChange(row) : null;
}
