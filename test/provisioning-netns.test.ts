// Provisioning status with cloud-init's own code posting: from a network namespace that plays the
// VM, cloud-init's reporting webhook handler (configured from the user-data mdserver served it)
// and its phone_home module report to a running mdserver; `mdserver instances list`, `show` and
// `wait` answer from what they posted. With verify_mac, a VM that takes another's address cannot
// post for it.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InstanceJson } from '../src/admin/protocol.js';
import { runPy, skipUnless } from './cloudinit.js';
import { VM1, VM2 } from './helpers.js';
import { waitFor } from './netns.js';
import { cli } from './process.js';
import { httpFrom, MDS_URL, VmNet, type Vm } from './vmnet.js';

const clients = skipUnless({ cloudInit: true, vmNet: true });

describe('cloud-init reports its boot to mdserver', clients, () => {
  let net: VmNet;
  let web: Vm;
  let db: Vm;
  before(async () => {
    net = await VmNet.start({ sections: { mdserver: { verify_mac: 'yes' } } });
    web = await net.addVm(VM1);
    db = await net.addVm(VM2);
  });
  after(() => net?.stop());

  const conf = (): string[] => ['--config', net.configFile];
  const status = async (name: string): Promise<string> => {
    const r = await cli(['instances', 'show', name, '--json', ...conf()]);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as InstanceJson).provisioning?.text ?? '';
  };
  /** Runs cloud-init's reporting in `vm` with the user-data mdserver serves it. */
  const report = (vm: Vm, stages: Record<string, string[]>, extra: Record<string, unknown> = {}): void => {
    const ud = httpFrom(vm.ns, `${MDS_URL}/latest/user-data`);
    assert.equal(ud.status, 200);
    runPy('report_events.py', { cloud_config: ud.body, stages, ...extra }, { ns: vm.ns, timeoutMs: 60000 });
  };

  test('the stages show in instances list, phone_home arrives, and wait exits 0', async () => {
    assert.equal(await status(VM1.name), 'waiting');
    assert.equal(httpFrom(web.ns, `${MDS_URL}/latest/meta-data/instance-id`).status, 200);
    const ud = httpFrom(web.ns, `${MDS_URL}/latest/user-data`).body;
    assert.match(ud, /endpoint: "http:\/\/169\.254\.169\.254\/cloud-init\/events"/, 'the address the VM reached');
    report(web, { 'init-network': ['ssh'] });
    await waitFor('booting: init-network', async () => (await status(VM1.name)) === 'booting: init-network', 5000);
    const list = await cli(['instances', 'list', ...conf()]);
    assert.match(list.stdout, /^test1 .* booting: init-network$/m);
    report(web, { 'modules-config': ['runcmd'], 'modules-final': ['scripts-user', 'phone_home'] },
      { instance_id: `i-${web.ipv4}`, phone_home: { url: `${MDS_URL}/cloud-init/events`, post: 'all', tries: 1 } });
    const waited = await cli(['instances', 'wait', VM1.name, '--timeout', '20', ...conf()]);
    assert.equal(waited.status, 0, waited.stderr);
    assert.match(waited.stdout, /^test1: ready \d+s$/m);
    const shown = await cli(['instances', 'show', VM1.name, ...conf()]);
    for (const line of [
      /start\s+init-network\/config-ssh: running config-ssh with frequency once-per-instance/,
      /finish\s+modules-config\/config-runcmd SUCCESS/,
      new RegExp(`phone-home\\s+phone_home: instance_id=i-${web.ipv4.replace(/\./g, '\\.')}, hostname=vm, fqdn=vm\\.example`),
      /finish\s+modules-final SUCCESS/,
    ]) assert.match(shown.stdout, line);
  });

  test('a module made to fail shows as failed: <module>, and wait exits 1 saying why', async () => {
    httpFrom(db.ns, `${MDS_URL}/latest/meta-data/instance-id`);
    report(db, { 'init-network': ['ssh'], 'modules-config': ['runcmd'], 'modules-final': ['scripts-user'] }, { fail: ['runcmd'] });
    const waited = await cli(['instances', 'wait', VM2.name, '--timeout', '20', ...conf()]);
    assert.equal(waited.status, 1, waited.stdout + waited.stderr);
    assert.match(waited.stderr, /^test2: failed: config-runcmd \(running config-runcmd with frequency once-per-instance\)$/m);
    assert.match(await status(VM1.name), /^ready \d+s$/, 'the other VM is untouched');
  });

  test('with verify_mac a VM that takes another VM\'s address cannot post for it', async () => {
    const before = await status(VM1.name);
    web.ns.ip('link', 'set', 'eth0', 'down');
    db.ns.ip('addr', 'flush', 'dev', 'eth0');
    db.ns.ip('addr', 'add', `${web.ipv4}/${net.network.prefix}`, 'dev', 'eth0');
    db.ns.ip('route', 'replace', `${MDS_URL.slice(7)}/32`, 'via', net.network.gateway, 'dev', 'eth0');
    const forged = JSON.stringify({ name: 'modules-final', event_type: 'finish', result: 'FAIL', description: 'forged', origin: 'cloudinit', timestamp: 1 });
    await waitFor('the thief to be refused', () => httpFrom(db.ns, `${MDS_URL}/cloud-init/events`, { method: 'POST', body: forged }).status === 403, 5000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await status(VM1.name), before, 'the victim\'s status did not move');
  });
});
