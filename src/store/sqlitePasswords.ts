// The SQLite statements behind the Store's one-time passwords (the `passwords` table of schema
// version 4), apart from the instance records' own.

import type Database from 'better-sqlite3';

export class SqlitePasswords {
  private readonly q;

  constructor(db: Database.Database) {
    this.q = {
      set: db.prepare<[string, number, string]>(
        `INSERT INTO passwords (instance_id, password, expires) SELECT id, ?, ? FROM instances WHERE name = ?
         ON CONFLICT(instance_id) DO UPDATE SET password = excluded.password, expires = excluded.expires`,
      ),
      get: db.prepare<[string, number], { password: string }>(
        'SELECT p.password FROM passwords p JOIN instances i ON i.id = p.instance_id WHERE i.name = ? AND p.expires > ?',
      ),
      delete: db.prepare<[string]>('DELETE FROM passwords WHERE instance_id = (SELECT id FROM instances WHERE name = ?)'),
      purge: db.prepare<[number]>('DELETE FROM passwords WHERE expires <= ?'),
    };
  }

  set(name: string, password: string, expires: number): boolean {
    return this.q.set.run(password, expires, name).changes > 0;
  }

  get(name: string, now: number): string | undefined {
    return this.q.get.get(name, now)?.password;
  }

  delete(name: string): boolean {
    return this.q.delete.run(name).changes > 0;
  }

  purge(now: number): number {
    return this.q.purge.run(now).changes;
  }
}
