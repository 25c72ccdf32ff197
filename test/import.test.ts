// Switching from md_server: its JSON database is imported once into SQLite beside it.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { request, startTestServer, tempDir, upload } from './helpers.js';

const MD_SERVER_DB = {
  metadata: { initialised: 1684000000.5, updated: 1684001000.0, locations: { host1: { hostname: 'host1.example', version: '0.6.5' } } },
  entries: [
    {
      location: 'host1', domain_name: 'legacy1', domain_uuid: 'becb25c7-b581-4ecd-b60e-a9942ad18879',
      domain_metadata: { userdata_prefix: 'testing' }, mds_mac: '52:54:00:3A:CF:41', mds_ipv4: '127.1.33.7', mds_ipv6: null,
      first_seen: 1684000000.25, last_update: 1684000500.0,
    },
    {
      location: 'host1', domain_name: 'legacy2', domain_uuid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
      domain_metadata: {}, mds_mac: '52:54:00:11:22:33', mds_ipv4: '127.1.33.8', mds_ipv6: null,
      first_seen: null, last_update: null,
    },
    { domain_name: 'broken' },
  ],
};

test('an md_server JSON database is imported once, left untouched, and its VMs keep their addresses', async () => {
  const dir = tempDir();
  const json = path.join(dir, 'db_file.json');
  const original = JSON.stringify(MD_SERVER_DB, null, 2);
  fs.writeFileSync(json, original);
  fs.mkdirSync(path.join(dir, 'userdata'));
  fs.writeFileSync(path.join(dir, 'userdata', 'testing.yaml'), 'testing-{{hostname}}');
  // md_server's flat layout of prefix templates, kept working while they are moved to prefixes/.
  const srv = await startTestServer({ mdserver: { db_file: json, legacy_prefixes: 'testing' } }, dir);
  try {
    assert.equal((await request(srv.port, '/latest/meta-data/instance-id', { from: '127.1.33.7' })).body, 'i-127.1.33.7');
    assert.equal((await request(srv.port, '/latest/meta-data/hostname', { from: '127.1.33.8' })).body, 'legacy2');
    assert.equal((await request(srv.port, '/latest/user-data', { from: '127.1.33.7' })).body, 'testing-legacy1');
    assert.equal((await request(srv.port, '/latest/meta-data/mac', { from: '127.1.33.7' })).body, '52:54:00:3a:cf:41');
    // The hook's next upload of the same domain keeps the imported address.
    assert.equal(await upload(srv.port, { name: 'legacy1', uuid: 'becb25c7-b581-4ecd-b60e-a9942ad18879', mac: '52:54:00:3a:cf:41' }), '127.1.33.7');
    assert.equal(srv.running.store.getMeta('imported_from'), json);
    assert.ok(fs.existsSync(path.join(dir, 'db_file.sqlite')));
  } finally {
    await srv.running.close();
  }
  assert.equal(fs.readFileSync(json, 'utf8'), original, 'the JSON file is never modified');

  // A second start uses the SQLite database and does not import again.
  const changed = { ...MD_SERVER_DB, entries: [] };
  fs.writeFileSync(json, JSON.stringify(changed));
  const again = await startTestServer({ mdserver: { db_file: json } }, dir);
  try {
    assert.equal(again.running.store.count(), 2);
  } finally {
    await again.close();
  }
});

test('a JSON database that is not md_server\'s stops start-up with a clear error', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'db_file.json'), '{"something": "else"}');
  await assert.rejects(startTestServer({ mdserver: { db_file: path.join(dir, 'db_file.json') } }, dir), /not an md_server database/);
  fs.rmSync(dir, { recursive: true, force: true });
});
