// `mdserver store copy`: a host's SQLite file (10,000 records) or md_server's JSON file copied
// into a real PostgreSQL store, as an operator runs it before the host joins the cluster.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PgStore } from '../src/store/postgres.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { NewInstance } from '../src/store/store.js';
import { tempDir } from './helpers.js';
import { PgServer } from './postgres.js';
import { cli } from './process.js';

const row = (i: number, over: Partial<NewInstance> = {}): NewInstance => ({
  name: `vm${i}`, uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  mac: `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
  ipv4: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, ipv6: null, location: 'rack1', metadata: { n: String(i) }, arch: null, nwfilter: null,
  firstSeen: 1_700_000_000_000, lastUpdate: 1_700_000_000_000, host: 'old-host', ...over,
});

function sqliteWith(rows: NewInstance[]): string {
  const file = path.join(tempDir(), 'mdserver.db');
  const s = new SqliteStore(file);
  s.insertMany(rows);
  s.close();
  return file;
}

const copy = (from: string, to: string) => cli(['store', 'copy', '--config', '/nonexistent.conf', '--from', from, '--to', to]);

describe('mdserver store copy', () => {
  let pg: PgServer;
  before(async () => {
    pg = await PgServer.start();
  });
  after(() => pg.destroySync());

  test('copies 10,000 records with a progress line, which a host already on the store sees; a second run copies nothing', async () => {
    const url = pg.url(await pg.createDatabase());
    const host = await PgStore.open({ url, password: null, host: 'watcher' });
    try {
      const file = sqliteWith(Array.from({ length: 10_000 }, (_, i) => row(i + 1)));
      const first = await copy(file, url);
      assert.equal(first.status, 0, first.stderr);
      assert.match(first.stderr, /^copied 5000 of 10000 records$/m);
      assert.match(first.stdout, /^10000 record\(s\) copied, 0 already there, 0 skipped, of 10000 in /m);
      await host.caughtUp();
      assert.equal(host.count(), 10_000);
      assert.deepEqual([host.byIPv4('10.0.39.16')?.name, host.byName('vm9999')?.metadata, host.byName('vm1')?.host], ['vm10000', { n: '9999' }, 'old-host']);
      const again = await copy(file, url);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /^0 record\(s\) copied, 10000 already there/m);
    } finally {
      await host.close();
    }
  });

  test('a record that collides with a stored one (overlapping pools) is reported with both, and nothing is written', async () => {
    const database = await pg.createDatabase();
    const url = pg.url(database);
    assert.equal((await copy(sqliteWith([row(1), row(2)]), url)).status, 0);
    // Another host handed 10.0.0.2 to a different VM, and vm3 is new.
    const r = await copy(sqliteWith([row(3), row(4, { ipv4: '10.0.0.2' })]), url);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /conflict: vm4 \(uuid \S+4, MAC 52:54:00:00:00:04, address 10\.0\.0\.2, host old-host\) conflicts with the stored vm2 \(uuid \S+2, MAC 52:54:00:00:00:02, address 10\.0\.0\.2, host old-host\)/);
    assert.match(r.stderr, /nothing was copied/);
    const names = await pg.sql<{ name: string }>('SELECT name FROM instances ORDER BY name', [], database);
    assert.deepEqual(names.map((n) => n.name), ['vm1', 'vm2'], 'vm3, which did not conflict, was not copied either');
  });

  test("md_server's JSON file is copied as it would be imported, its VMs keeping their addresses", async () => {
    const database = await pg.createDatabase();
    const json = path.join(tempDir(), 'db_file.json');
    fs.writeFileSync(json, JSON.stringify({ metadata: {}, entries: [
      { location: 'host1', domain_name: 'legacy1', domain_uuid: 'becb25c7-b581-4ecd-b60e-a9942ad18879', domain_metadata: { role: 'web' },
        mds_mac: '52:54:00:3A:CF:41', mds_ipv4: '10.122.33.7', mds_ipv6: null, first_seen: 1684000000.5 },
      { domain_name: 'broken' },
    ] }));
    const r = await copy(json, pg.url(database));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /skipped: broken: missing name, uuid or a valid MAC/);
    const rows = await pg.sql('SELECT name, mac, ipv4, metadata, first_seen FROM instances', [], database);
    assert.deepEqual(rows, [{ name: 'legacy1', mac: '52:54:00:3a:cf:41', ipv4: '10.122.33.7', metadata: '{"role":"web"}', first_seen: '1684000000500' }]);
  });
});
