// A VM's identity is its uuid: a new domain that reuses a registered name does not inherit that
// instance's address and instance id unless the host says so (`mdserver instances delete` for a
// new record, `mdserver instances rekey` for the same VM defined again under a new uuid).

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { domainXml, request, upload, VM1, withVms, type DomainSpec } from './helpers.js';
import { cli } from './process.js';

const conf = (dir: string): string[] => ['--config', path.join(dir, 'mdserver.conf')];
/** VM1 defined again under an ec2 uuid, as the README's ec2 recipe does; same name, same MAC. */
const REDEFINED: DomainSpec = { ...VM1, uuid: 'ec2b7c1e-5d3a-4f62-9a0e-3c41d2b8e917' };
/** Another VM given VM1's name: another uuid and MAC. */
const NEWCOMER: DomainSpec = { name: VM1.name, uuid: '6e6e6e6e-0000-4000-8000-000000000001', mac: '52:54:00:6e:6e:01' };

const post = (port: number, spec: DomainSpec) => request(port, '/instance-upload', { method: 'POST', body: domainXml(spec) });
const uuidOf = async (port: number, ip: string): Promise<unknown> =>
  (JSON.parse((await request(port, '/openstack/latest/meta_data.json', { from: ip })).body) as { uuid: unknown }).uuid;

test("a new domain under a registered name is a 409 naming both, and the old record keeps its address, instance id and uuid", async () => {
  await withVms({}, [VM1], async (srv, ip) => {
    const r = await post(srv.port, NEWCOMER);
    assert.equal(r.status, 409);
    assert.equal(
      r.body,
      `name test1 of domain ${NEWCOMER.uuid} already belongs to the instance of domain ${VM1.uuid} (address ${ip}), which is left as it is: ` +
        `if this is that VM defined again, move its record to the new uuid (mdserver instances rekey test1 --uuid ${NEWCOMER.uuid}); ` +
        'otherwise delete the old record first (mdserver instances delete test1)',
    );
    assert.equal((await request(srv.port, '/latest/meta-data/instance-id', { from: ip })).body, `i-${ip}`);
    assert.equal(await uuidOf(srv.port, ip), VM1.uuid);
    // Repeating it changes nothing either.
    assert.equal((await post(srv.port, NEWCOMER)).status, 409);
    assert.equal(srv.running.services.registry.count(), 1);
  });
});

test('after instances delete, the domain reusing the name is a new record', async () => {
  await withVms({}, [VM1], async (srv, ip) => {
    const del = await cli(['instances', 'delete', 'test1', ...conf(srv.dir)]);
    assert.equal(del.status, 0, del.stderr);
    const r = await post(srv.port, NEWCOMER);
    assert.equal(r.status, 201, r.body);
    assert.match(r.body, /^registered test1 mac=52:54:00:6e:6e:01 ipv4=/);
    assert.equal((await request(srv.port, '/latest/meta-data/instance-id', { from: ip })).status, 400, 'the old address is nobody\'s');
  });
});

test('instances rekey moves the record to the new uuid: the redefined domain keeps its address and instance id', async () => {
  await withVms({}, [VM1], async (srv, ip) => {
    assert.equal((await post(srv.port, REDEFINED)).status, 409, 'without rekey the redefined domain is refused');
    const rekey = await cli(['instances', 'rekey', 'test1', '--uuid', REDEFINED.uuid, ...conf(srv.dir)]);
    assert.equal(rekey.status, 0, rekey.stderr);
    assert.equal(rekey.stdout, `moved test1 from uuid ${VM1.uuid} to ${REDEFINED.uuid}; it keeps ${ip} and its instance id\n`);
    assert.equal(await upload(srv.port, REDEFINED), ip);
    assert.equal((await request(srv.port, '/latest/meta-data/instance-id', { from: ip })).body, `i-${ip}`);
    assert.equal(await uuidOf(srv.port, ip), REDEFINED.uuid);
    const again = await cli(['instances', 'rekey', 'test1', '--uuid', REDEFINED.uuid.toUpperCase(), '--json', ...conf(srv.dir)]);
    assert.equal(again.status, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { previousUuid: string }).previousUuid, REDEFINED.uuid);
  });
});

test('instances rekey refuses an unknown name, a bad uuid, a uuid in use, and a missing --uuid', async () => {
  await withVms({}, [VM1, { ...NEWCOMER, name: 'other' }], async (srv) => {
    const unknown = await cli(['instances', 'rekey', 'nosuchvm', '--uuid', REDEFINED.uuid, ...conf(srv.dir)]);
    assert.deepEqual([unknown.status, unknown.stderr], [1, 'mdserver instances: no instance named "nosuchvm"\n']);
    const bad = await cli(['instances', 'rekey', 'test1', '--uuid', 'ec2-not-a-uuid', ...conf(srv.dir)]);
    assert.deepEqual([bad.status, bad.stderr], [1, 'mdserver instances: "ec2-not-a-uuid" is not a uuid\n']);
    const inUse = await cli(['instances', 'rekey', 'test1', '--uuid', NEWCOMER.uuid, ...conf(srv.dir)]);
    assert.deepEqual([inUse.status, inUse.stderr], [1, `mdserver instances: uuid ${NEWCOMER.uuid} already belongs to the instance other\n`]);
    const usage = await cli(['instances', 'rekey', 'test1', ...conf(srv.dir)]);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /expected list, show NAME, delete NAME, rekey NAME --uuid UUID or password NAME/);
    const shown = await cli(['instances', 'show', 'test1', '--json', ...conf(srv.dir)]);
    assert.equal((JSON.parse(shown.stdout) as { uuid: string }).uuid, VM1.uuid);
  });
});
