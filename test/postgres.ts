// A real PostgreSQL for the tests: Debian's server binaries, a cluster made by initdb in a
// temporary directory, run as the `postgres` user and reached only over its unix socket (no TCP
// port: nothing to collide with, and the socket works from inside a network namespace). Stopped
// and removed when the test process exits, however it exits.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import pg from 'pg';
import { PgStore } from '../src/store/postgres.js';

const BIN_DIRS = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'];

function binary(name: string): string {
  for (const dir of BIN_DIRS) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  return name;
}

function postgresUser(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

const running = new Set<PgServer>();
process.on('exit', () => {
  for (const s of running) s.destroySync();
});

export class PgServer {
  private dbCount = 0;

  private constructor(
    /** The directory of the cluster and of its socket. */
    readonly dir: string,
    private readonly user: { uid: number; gid: number },
  ) {}

  static async start(): Promise<PgServer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdserver-pg-'));
    const user = postgresUser();
    fs.chownSync(dir, user.uid, user.gid);
    fs.chmodSync(dir, 0o755);
    const s = new PgServer(dir, user);
    running.add(s);
    s.run(binary('initdb'), ['-D', s.data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    s.startSync();
    return s;
  }

  private get data(): string {
    return path.join(this.dir, 'data');
  }

  private run(cmd: string, args: string[]): void {
    const r = spawnSync(cmd, args, { uid: this.user.uid, gid: this.user.gid, encoding: 'utf8', cwd: this.dir });
    if (r.status !== 0) throw new Error(`${path.basename(cmd)} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  }

  /** Starts the server (again) and waits until it accepts connections. */
  startSync(): void {
    // No TCP at all; fsync off, since a test database is thrown away anyway.
    const opts = `-k ${this.dir} -c listen_addresses= -F -c max_connections=200`;
    this.run(binary('pg_ctl'), ['-D', this.data, '-l', path.join(this.dir, 'log'), '-o', opts, '-w', 'start']);
  }

  /** Stops the server at once, as a crash or an operator's `stop -m immediate` would. */
  stopSync(): void {
    this.run(binary('pg_ctl'), ['-D', this.data, '-m', 'immediate', '-w', 'stop']);
  }

  /** A connection URL for `database`, in the unix-socket form mdserver's `[store] url` takes. */
  url(database = 'postgres'): string {
    return `postgresql://postgres@/${database}?host=${encodeURIComponent(this.dir)}`;
  }

  /** A new empty database, for one test. */
  async createDatabase(): Promise<string> {
    const name = `t${process.pid}_${++this.dbCount}`;
    await this.sql(`CREATE DATABASE ${name}`);
    return name;
  }

  /** Runs one statement as the superuser, on `database`. */
  async sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params: unknown[] = [], database = 'postgres'): Promise<R[]> {
    const c = new pg.Client({ host: this.dir, user: 'postgres', database });
    await c.connect();
    try {
      return (await c.query<R>(text, params)).rows;
    } finally {
      await c.end();
    }
  }

  destroySync(): void {
    if (!running.delete(this)) return;
    spawnSync(binary('pg_ctl'), ['-D', this.data, '-m', 'immediate', '-w', 'stop'], { uid: this.user.uid, gid: this.user.gid, cwd: this.dir });
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Runs `write` on `store` (opened with `[store] host_name` `host`) while a session of its own holds
 * the change counter's row lock, and once the write waits for that lock inside its transaction,
 * cuts the connection it took from the store's pool: its socket destroyed from this side, with no
 * word to the server. Resolves to the error the write failed with, or null if it succeeded; the
 * lock is given up after.
 */
export async function cutWhileWaitingForCounter(server: PgServer, database: string, store: PgStore, host: string,
  write: () => Promise<unknown>): Promise<unknown> {
  let taken: pg.PoolClient | null = null;
  (store as unknown as { pool: pg.Pool }).pool.on('acquire', (c) => (taken = c));
  const holder = new pg.Client({ connectionString: server.url(database) });
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT counter FROM cluster FOR UPDATE');
    const settled = write().then(() => null, (e: unknown) => e);
    // The store's pool names its sessions `mdserver <host>`.
    const waiting = async (): Promise<boolean> =>
      (await server.sql<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
        [`mdserver ${host}`], database))[0]?.n === '1';
    for (let i = 0; !(await waiting()); i++) if (i >= 300) throw new Error(`${host}'s write never waited for the change counter`);
    const cut = taken as unknown as { connection: { stream: { destroy(): void } } } | null;
    if (!cut) throw new Error(`${host}'s write took no connection from its pool`);
    cut.connection.stream.destroy();
    const outcome = await settled;
    // The lock is released only once the server has abandoned the write of the vanished client:
    // a server that went on waiting would then take the counter and commit it.
    for (let i = 0; await waiting(); i++) if (i >= 300) throw new Error(`the server kept ${host}'s write waiting after its connection was cut`);
    return outcome;
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    await holder.end();
  }
}

/** A real PostgreSQL with one database, and a store on it for each host of a test file. */
export interface HostsOnOneDatabase {
  readonly server: PgServer;
  readonly database: string;
  /** One store per name given, as host-<name>, in that order. */
  readonly hosts: PgStore[];
}

/**
 * Starts the server and opens the stores before the calling file's tests, and closes and removes
 * them after: the setup of the store tests that play several hosts.
 */
export function hostsOnOneDatabase(names: readonly string[]): HostsOnOneDatabase {
  let server: PgServer | null = null;
  let database = '';
  const hosts: PgStore[] = [];
  before(async () => {
    server = await PgServer.start();
    database = await server.createDatabase();
    for (const h of names) hosts.push(await PgStore.open({ url: server.url(database), password: null, host: `host-${h}` }));
  });
  after(async () => {
    for (const h of hosts) await h.close();
    server?.destroySync();
  });
  return {
    get server(): PgServer {
      if (!server) throw new Error('the PostgreSQL server starts before the tests');
      return server;
    },
    get database(): string {
      return database;
    },
    hosts,
  };
}
