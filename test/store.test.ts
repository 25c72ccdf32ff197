// The SQLite instance store: the store contract on a real file, and what only SQLite does
// (its file's journal, schema versions).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/store/sqlite.js';
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
