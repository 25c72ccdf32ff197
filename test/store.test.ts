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
        assert.match(e.message, /schema version 7; this mdserver knows up to 1/);
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
