// The pure parts of provisioning status: what a posted body becomes (report.ts) and what a boot's
// events mean (status.ts), as the operator reads them in `mdserver instances list`.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMdsError } from '../src/errors.js';
import { clean, MAX_DESCRIPTION, MAX_NAME, parseReport } from '../src/provisioning/report.js';
import { provisioningStatus, statusText } from '../src/provisioning/status.js';
import { asksInstanceId } from '../src/provisioning/tracker.js';
import type { BootEvent, BootRecord } from '../src/store/store.js';

const ev = (name: string, kind: BootEvent['kind'], result: string | null = null, received = 0): BootEvent =>
  ({ received, kind, name, result, description: `d ${name}` });
const boot = (events: BootEvent[], firstRequest: number | null = 0): BootRecord => ({ boot: 1, began: 0, firstRequest, events });
const text = (r: BootRecord | undefined): string => statusText(provisioningStatus(r));

describe('a posted report', () => {
  test('cloud-init\'s webhook event becomes one event; its guest timestamp and origin are not kept', () => {
    const body = Buffer.from(JSON.stringify({ name: 'modules-final/config-phone_home', description: 'ran', event_type: 'finish', origin: 'cloudinit', timestamp: 1.5, result: 'WARN' }));
    assert.deepEqual(parseReport(body, undefined, 7), { received: 7, kind: 'finish', name: 'modules-final/config-phone_home', result: 'WARN', description: 'ran' });
  });

  test('bad shapes are BAD_REQUEST', () => {
    for (const body of ['', 'null', '"x"', '{"event_type":"start"}', '{"event_type":"begin","name":"x"}', '{"event_type":"finish","name":"x"}',
      '{"event_type":"start","name":""}', '{"event_type":"start","name":"x","description":{}}']) {
      assert.throws(() => parseReport(Buffer.from(body), 'application/json', 0), (e) => isMdsError(e) && e.code === 'BAD_REQUEST', body);
    }
  });

  test('phone_home\'s form keeps the instance id, names and which host keys came, never the keys', () => {
    const e = parseReport(Buffer.from('instance_id=i-1&hostname=vm&fqdn=vm.x&pub_key_rsa=N%2FA&pub_key_ed25519=ssh-ed25519+AAAA'), 'application/x-www-form-urlencoded', 3);
    assert.deepEqual(e, { received: 3, kind: 'phone-home', name: 'phone_home', result: null, description: 'instance_id=i-1, hostname=vm, fqdn=vm.x, host keys: pub_key_ed25519' });
  });

  test('fields are one line, without control characters, and bounded', () => {
    assert.equal(clean('a\r\n\x1b[31mb\u202ec\u0085d\te', 100), 'a [31mb c d e');
    const long = parseReport(Buffer.from(JSON.stringify({ event_type: 'start', name: 'n'.repeat(10_000), description: 'd'.repeat(10_000) })), undefined, 0);
    assert.equal(long.name.length, MAX_NAME);
    assert.equal(long.description.length, MAX_DESCRIPTION);
  });
});

describe('a boot\'s status', () => {
  test('waiting, no report, booting, ready with the seconds from the first request', () => {
    assert.equal(text(undefined), 'waiting');
    assert.equal(text(boot([], null)), 'waiting');
    assert.equal(text(boot([])), 'no report');
    assert.equal(text(boot([ev('init-network', 'start'), ev('init-network/config-ssh', 'finish', 'SUCCESS')])), 'booting: init-network');
    const done = provisioningStatus(boot([ev('modules-final', 'start'), ev('modules-final', 'finish', 'WARN', 41_400)], 0));
    assert.deepEqual([statusText(done), done.finished, done.seconds], ['ready 41s', true, 41.4]);
  });

  test('a failing module is named over its stage, before and after modules-final', () => {
    const events = [ev('modules-config/config-runcmd', 'finish', 'FAIL'), ev('modules-config', 'finish', 'FAIL')];
    const mid = provisioningStatus(boot(events));
    assert.deepEqual([statusText(mid), mid.finished, mid.failure?.description], ['failed: config-runcmd', false, 'd modules-config/config-runcmd']);
    assert.equal(provisioningStatus(boot([...events, ev('modules-final', 'finish', 'SUCCESS')])).finished, true);
    assert.equal(text(boot([ev('init-network', 'finish', 'FAIL')])), 'failed: init-network');
  });

  test('phone_home alone ends a boot; after webhook events it is one of them', () => {
    assert.equal(text(boot([ev('phone_home', 'phone-home', null, 5000)])), 'ready 5s');
    assert.equal(text(boot([ev('modules-config', 'start'), ev('phone_home', 'phone-home')])), 'booting: modules-final');
  });

  test('instance-id reads: EC2 meta-data/instance-id, OpenStack meta_data.json, NoCloud meta-data', () => {
    for (const segs of [['latest', 'meta-data', 'instance-id'], ['2009-04-04', 'meta-data', '', 'instance-id'], ['openstack', 'latest', 'meta_data.json'], ['nocloud', 'meta-data']]) {
      assert.ok(asksInstanceId(segs), segs.join('/'));
    }
    for (const segs of [['latest', 'meta-data', ''], ['latest', 'user-data'], ['latest', 'meta-data', 'tags', 'instance', 'instance-id'], ['nocloud', 'user-data']]) {
      assert.ok(!asksInstanceId(segs), segs.join('/'));
    }
  });
});
