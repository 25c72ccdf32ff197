// Load-independent figures for the cluster bench (bench/cluster.ts): on a shared machine the
// rates move with whatever else runs, while the work an upload costs does not. Around a phase of
// uploads this reads the CPU time of each mdserver host and of all of PostgreSQL's processes,
// PostgreSQL's own counts of transactions and rows written, each host's dnsmasq rewrites, and
// samples how many of the hosts' database sessions wait on a lock (a write waiting for another's).

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { PgServer } from '../test/postgres.js';
import { cpuMs } from './procs.js';

/** The postmaster and its children (the backends): all of this PostgreSQL's CPU. */
function pgPids(pg: PgServer): number[] {
  const postmaster = Number(fs.readFileSync(path.join(pg.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  const out = [postmaster];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster) out.push(Number(d));
    } catch {
      // A process that ended meanwhile.
    }
  }
  return out;
}

function pgCpuMs(pg: PgServer): number {
  let sum = 0;
  for (const pid of pgPids(pg)) {
    try {
      sum += cpuMs(pid);
    } catch {
      // Ended meanwhile: its CPU is lost to the count (the pools keep their connections during a phase).
    }
  }
  return sum;
}

interface DbCounts { commits: number; rollbacks: number; inserted: number; updated: number; deleted: number }

async function dbCounts(pg: PgServer): Promise<DbCounts> {
  const [r] = await pg.sql<Record<string, string>>(`SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted
    FROM pg_stat_database WHERE datname = 'postgres'`);
  return { commits: Number(r?.xact_commit), rollbacks: Number(r?.xact_rollback), inserted: Number(r?.tup_inserted), updated: Number(r?.tup_updated), deleted: Number(r?.tup_deleted) };
}

function rewrites(port: number): Promise<number> {
  return new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve(Number(/dnsmasq\S*\{[^}]*event="rewrite"[^}]*\}\s+(\d+)/.exec(text)?.[1] ?? NaN)));
    }).on('error', () => resolve(NaN));
  });
}

export interface Snapshot { hostCpu: number[]; pgCpu: number; db: DbCounts; rewrites: number[] }

export async function snapshot(pg: PgServer, hosts: readonly { pid: number; port: number }[]): Promise<Snapshot> {
  // PostgreSQL's statistics reach pg_stat_database up to a second after the transactions.
  await new Promise((r) => setTimeout(r, 1500));
  return {
    hostCpu: hosts.map((h) => cpuMs(h.pid)), pgCpu: pgCpuMs(pg), db: await dbCounts(pg),
    rewrites: await Promise.all(hosts.map((h) => rewrites(h.port))),
  };
}

/** Samples, every 10 ms until stopped, the hosts' database sessions that run a statement and those waiting on a lock. */
export function lockSampler(pg: PgServer): { stop(): Promise<{ active: number; waiting: number; samples: number }> } {
  let stopped = false;
  const sums = { active: 0, waiting: 0, samples: 0 };
  const run = (async () => {
    const { default: pgLib } = await import('pg');
    const c = new pgLib.Client({ host: pg.dir, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      while (!stopped) {
        const r = (await c.query<{ active: string; waiting: string }>(`SELECT count(*) FILTER (WHERE state <> 'idle') AS active,
          count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting FROM pg_stat_activity WHERE application_name LIKE 'mdserver host-_'`)).rows[0];
        sums.active += Number(r?.active);
        sums.waiting += Number(r?.waiting);
        sums.samples++;
        await new Promise((res) => setTimeout(res, 10));
      }
    } finally {
      await c.end();
    }
  })();
  return {
    async stop() {
      stopped = true;
      await run;
      return sums;
    },
  };
}

/** The lines to print for one phase of `uploads` uploads between `a` and `b`. */
export function perUpload(a: Snapshot, b: Snapshot, uploads: number, locks: { active: number; waiting: number; samples: number }): string[] {
  const per = (x: number): string => (x / uploads).toFixed(2);
  const hostCpu = b.hostCpu.map((v, i) => per(v - (a.hostCpu[i] ?? 0)));
  return [
    `CPU ms per upload: hosts ${hostCpu.join(' / ')} (each host's own work plus replicating the others'), PostgreSQL ${per(b.pgCpu - a.pgCpu)}`,
    `per upload in PostgreSQL: ${per(b.db.commits - a.db.commits)} commits, ${per(b.db.rollbacks - a.db.rollbacks)} rollbacks, ` +
      `rows inserted ${per(b.db.inserted - a.db.inserted)}, updated ${per(b.db.updated - a.db.updated)}, deleted ${per(b.db.deleted - a.db.deleted)}`,
    `dnsmasq rewrites per host: ${b.rewrites.map((v, i) => v - (a.rewrites[i] ?? 0)).join(' / ')}`,
    `hosts' write sessions: ${(locks.active / Math.max(1, locks.samples)).toFixed(2)} running a statement on average, ` +
      `${(locks.waiting / Math.max(1, locks.samples)).toFixed(2)} of them waiting on a lock (${locks.samples} samples)`,
  ];
}
