// Registering and deleting through the admin socket's API (what `mdserver sync` and
// `mdserver instances delete` send), including the answers to refused registrations.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { adminRequest } from '../src/cli/common.js';
import { domainXml, request, VM1, VM2, withVms } from './helpers.js';

test('POST /instances registers a domain, and refuses bad XML and a taken MAC with their codes', async () => {
  await withVms({}, [], async (t) => {
    const socket = t.running.adminSocket as string;
    const created = await adminRequest(socket, 'POST', '/instances', domainXml(VM1));
    assert.equal(created.status, 201);
    const ip = (created.body as { instance: { ipv4: string } }).instance.ipv4;
    assert.equal((await request(t.port, '/latest/meta-data/local-hostname', { from: ip })).body, 'test1');

    const again = await adminRequest(socket, 'POST', '/instances', domainXml(VM1));
    const repeat = again.body as { created: boolean; changed: boolean; instance: { ipv4: string } };
    assert.deepEqual([again.status, repeat.created, repeat.changed, repeat.instance.ipv4], [200, false, false, ip]);

    const bad = await adminRequest(socket, 'POST', '/instances', '<domain><name>x</name');
    assert.equal(bad.status, 400);
    assert.equal((bad.body as { error: string }).error, 'BAD_DOMAIN_XML');

    const taken = await adminRequest(socket, 'POST', '/instances', domainXml({ ...VM2, mac: VM1.mac }));
    assert.equal(taken.status, 409);
    assert.match((taken.body as { message: string }).message, /already belongs to domain test1/);
  });
});

test('DELETE /instances/NAME answers once the lease entry is out of the dnsmasq files', async () => {
  await withVms({}, [VM1, VM2], async (t) => {
    const dhcp = path.join(t.dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts');
    const gone = await adminRequest(t.running.adminSocket as string, 'DELETE', '/instances/test2');
    assert.equal(gone.status, 200);
    assert.equal((gone.body as { name: string }).name, 'test2');
    const hosts = fs.readFileSync(dhcp, 'utf8');
    assert.doesNotMatch(hosts, new RegExp(VM2.mac));
    assert.match(hosts, new RegExp(VM1.mac), 'the file was rewritten from the store, not emptied');
    const missing = await adminRequest(t.running.adminSocket as string, 'DELETE', '/instances/test2');
    assert.equal(missing.status, 404);
  });
});
