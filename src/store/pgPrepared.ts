// Named prepared statements for the PostgreSQL store's hot statements. node-postgres sends a
// statement without a name as an unnamed one, which the server parses, analyzes and plans again at
// every execution: for the statements every upload and every catch-up runs, that was about half of
// the database's CPU per upload. A named one is parsed once per connection (node-postgres
// remembers which of its connections has it) and, its plan cached by the server, planned once too
// when its parameters do not change the best plan (PostgreSQL compares after five executions).

import pg from 'pg';

const names = new Set<string>();

/** Takes `name` for one statement of this process (see prepared). */
function claim(name: string): void {
  if (names.has(name)) throw new Error(`prepared statement ${name} is declared twice`);
  names.add(name);
}

/** A statement of fixed text run with different values: `query(values)` is its query config. */
export interface Prepared {
  readonly name: string;
  readonly text: string;
  query(values: unknown[]): pg.QueryConfig;
}

/**
 * Declares the statement `text` under `name`, unique in the process: node-postgres refuses a name
 * it has prepared with another text on the same connection, so two statements sharing a name
 * would fail on whichever connection ran the other first. Statements sent several in one message
 * (the simple query protocol) cannot be prepared this way; see sqlPrepared.
 */
export function prepared(name: string, text: string): Prepared {
  claim(name);
  return { name, text, query: (values) => ({ name, text, values }) };
}

/**
 * A statement without parameters, prepared with SQL's PREPARE on each connection before its first
 * use, so that it can run as `EXECUTE name` inside a message of several statements (as the stamp
 * runs with the COMMIT after it): `ensure(c)` prepares it on `c` unless it already did. Prepared
 * statements belong to the session, whatever becomes of the transaction around them; a new
 * connection is a new client object here, and gets its own.
 */
export function sqlPrepared(name: string, text: string): { readonly execute: string; ensure(c: pg.ClientBase): Promise<void> } {
  claim(name);
  const ready = new WeakSet<pg.ClientBase>();
  return {
    execute: `EXECUTE ${name}`,
    async ensure(c) {
      if (ready.has(c)) return;
      try {
        await c.query(`PREPARE ${name} AS ${text}`);
      } catch (e) {
        // Prepared already: by an earlier try whose answer came too late (query_timeout).
        if (!(e instanceof pg.DatabaseError && e.code === '42P05')) throw e;
      }
      ready.add(c);
    },
  };
}

/**
 * A prepared statement whose columns changed since its connection prepared it (a newer host
 * migrated the schema, adding a column to a table read with `*`): the server refuses it on that
 * connection from then on, so the caller prepares it again, on a new connection or after
 * DEALLOCATE.
 */
export function stalePlan(e: unknown): boolean {
  return e instanceof pg.DatabaseError && e.code === '0A000' && /cached plan/.test(e.message);
}
