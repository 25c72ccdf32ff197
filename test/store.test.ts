// The SQLite instance store: the store contract on a real file, and what only SQLite does
// (its file's journal, schema versions).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/store/sqlite.js';
import type { NewInstance } from '../src/store/store.js';
import { tempDir } from './helpers.js';
import { storeContract } from './store-contract.js';

storeContract('SQLite', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'mdserver.db');
  const opened = [new SqliteStore(file)];
  return {
    store: opened[0] as SqliteStore,
    async reopen() {
      const s = new SqliteStore(file);
      opened.push(s);
      return s;
    },
    async dispose() {
      for (const s of opened) s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('the SQLite file', () => {
  test('is in WAL mode, so metadata reads go on while an upload commits', () => {
    const dir = tempDir();
    try {
      const file = path.join(dir, 'mdserver.db');
      new SqliteStore(file).close();
      const raw = new Database(file, { readonly: true });
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
      raw.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a version 1 database gains the nwfilter column and keeps every record as it was', () => {
    const dir = tempDir();
    try {
      const file = path.join(dir, 'mdserver.db');
      const v1 = new Database(file);
      v1.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE instances (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, uuid TEXT NOT NULL UNIQUE,
          mac TEXT NOT NULL UNIQUE, ipv4 TEXT UNIQUE, ipv6 TEXT UNIQUE, location TEXT NOT NULL DEFAULT '',
          metadata TEXT NOT NULL DEFAULT '{}', arch TEXT, first_seen INTEGER NOT NULL, last_update INTEGER NOT NULL);
        CREATE TABLE locations (name TEXT PRIMARY KEY, hostname TEXT NOT NULL, version TEXT NOT NULL,
          first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);
        INSERT INTO instances (name, uuid, mac, ipv4, metadata, first_seen, last_update)
          VALUES ('old', 'becb25c7-b581-4ecd-b60e-a9942ad18879', '52:54:00:3a:cf:41', '10.0.0.5', '{"a":"b"}', 1, 2);`);
      v1.pragma('user_version = 1');
      v1.close();
      const store = new SqliteStore(file);
      try {
        const old = store.byName('old');
        assert.deepEqual([old?.ipv4, old?.metadata, old?.nwfilter, old?.firstSeen], ['10.0.0.5', { a: 'b' }, null, 1]);
      } finally {
        store.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a database written by a newer mdserver is refused, naming its version, and left as it was', () => {
    const dir = tempDir();
    try {
      const file = path.join(dir, 'mdserver.db');
      new SqliteStore(file).close();
      const raw = new Database(file);
      raw.pragma('user_version = 7');
      raw.close();
      assert.throws(() => new SqliteStore(file), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'DB_FORMAT');
        assert.match(e.message, /schema version 7; this mdserver knows up to \d+/);
        return true;
      });
      const after = new Database(file, { readonly: true });
      assert.equal(after.pragma('user_version', { simple: true }), 7);
      after.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Two records whose names are one host name: what md_server's database may hold. */
const VICTIM_UPPER: NewInstance = {
  name: 'VICTIM', uuid: '11111111-0000-4000-8000-000000000001', mac: '52:54:00:00:00:01', ipv4: '10.0.0.1', ipv6: null,
  location: '', metadata: {}, arch: null, nwfilter: null, firstSeen: 1000, lastUpdate: 1000,
};
const VICTIM_UNDERSCORE: NewInstance = { ...VICTIM_UPPER, name: 'victim_', uuid: '11111111-0000-4000-8000-000000000002', mac: '52:54:00:00:00:02', ipv4: '10.0.0.2', firstSeen: 2000 };
const reg = (r: NewInstance) => ({ name: r.name, uuid: r.uuid, mac: r.mac, metadata: r.metadata, arch: r.arch, location: r.location });

describe('host names that collide in a database from before the rule', () => {
  test('both records keep working: each re-registers, a third is refused, the host entries list both', async () => {
    const dir = tempDir();
    const store = new SqliteStore(path.join(dir, 'mdserver.db'));
    try {
      store.insertMany([VICTIM_UPPER, VICTIM_UNDERSCORE]);
      const again = await store.registerAll([reg(VICTIM_UNDERSCORE), reg(VICTIM_UPPER)], () => null);
      assert.deepEqual(again.map((o) => (o instanceof Error ? o.message : o.instance.ipv4)), ['10.0.0.2', '10.0.0.1']);
      const [third] = await store.registerAll([{ ...reg(VICTIM_UPPER), name: 'Victim', uuid: '11111111-0000-4000-8000-000000000003', mac: '52:54:00:00:00:03' }], () => '10.0.0.3');
      assert.match((third as Error).message, /^host name Victim of domain Victim \(\S+3\) is already the host name of domain (VICTIM|victim_) /);
      assert.deepEqual(store.hostEntries().map((h) => [h.hostName, h.ipv4]), [['VICTIM', '10.0.0.1'], ['victim', '10.0.0.2']]);
    } finally {
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a version 1 database is upgraded with the host names of its records, and new collisions are refused', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'mdserver.db');
    const raw = new Database(file);
    raw.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE instances (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, uuid TEXT NOT NULL UNIQUE, mac TEXT NOT NULL UNIQUE,
        ipv4 TEXT UNIQUE, ipv6 TEXT UNIQUE, location TEXT NOT NULL DEFAULT '', metadata TEXT NOT NULL DEFAULT '{}', arch TEXT,
        first_seen INTEGER NOT NULL, last_update INTEGER NOT NULL);
      CREATE TABLE locations (name TEXT PRIMARY KEY, hostname TEXT NOT NULL, version TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);
      INSERT INTO instances (name, uuid, mac, ipv4, first_seen, last_update) VALUES ('Web Server', '22222222-0000-4000-8000-000000000001', '52:54:00:00:01:01', '10.0.0.9', 1, 1);`);
    raw.pragma('user_version = 1');
    raw.close();
    const store = new SqliteStore(file);
    try {
      assert.equal(store.byName('Web Server')?.ipv4, '10.0.0.9');
      const [taken] = await store.registerAll([{ name: 'web-server', uuid: '22222222-0000-4000-8000-000000000002', mac: '52:54:00:00:01:02', metadata: {}, arch: null, location: '' }], () => '10.0.0.10');
      assert.match((taken as Error).message, /is already the host name of domain Web Server/);
    } finally {
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
