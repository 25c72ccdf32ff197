// Provisioning status over loopback: a VM's cloud-init events posted to /cloud-init/events become
// the STATUS of `mdserver instances list`, the timeline of `show` and the answer of `wait`; a VM
// can only ever write its own status, and hostile bodies are refused or cut down.

import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { InstanceJson } from '../src/admin/protocol.js';
import { adminRequest } from '../src/cli/common.js';
import { request, upload, VM1, VM2, withVms, type TestServer } from './helpers.js';
import { cli } from './process.js';

const conf = (dir: string): string[] => ['--config', path.join(dir, 'mdserver.conf')];

function post(srv: TestServer, from: string, body: unknown, headers: Record<string, string> = {}) {
  return request(srv.port, '/cloud-init/events', { method: 'POST', from, body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body), headers });
}

const start = (name: string) => ({ name, description: `running ${name}`, event_type: 'start', origin: 'cloudinit', timestamp: 1.5 });
const finish = (name: string, result = 'SUCCESS', description = `ran ${name}`) => ({ ...start(name), event_type: 'finish', result, description });

/** What `mdserver instances list --json` prints, asked over the admin socket (no process to start). */
async function listed(srv: TestServer): Promise<Record<string, InstanceJson>> {
  const r = await adminRequest(srv.running.adminSocket as string, 'GET', '/instances');
  assert.equal(r.status, 200);
  return Object.fromEntries((r.body as InstanceJson[]).map((i) => [i.name, i]));
}

/** Waits (events are stored within 100 ms) until `name`'s status text is `text`. */
async function statusBecomes(srv: TestServer, name: string, want: RegExp): Promise<InstanceJson> {
  let last = '';
  for (let i = 0; i < 40; i++) {
    const got = (await listed(srv))[name] as InstanceJson;
    last = got.provisioning?.text ?? '';
    if (want.test(last)) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name}: status ${last}, expected ${String(want)}`);
}

describe('provisioning status', () => {
  test('a boot goes waiting, no report, booting, ready; wait exits 0 and a new upload starts over', async () => {
    await withVms({}, [VM1], async (srv, ip) => {
      assert.equal((await statusBecomes(srv, 'test1', /^waiting$/)).provisioning?.phase, 'waiting');
      assert.equal((await request(srv.port, '/latest/meta-data/instance-id', { from: ip })).status, 200);
      await statusBecomes(srv, 'test1', /^no report$/);
      assert.equal((await post(srv, ip, start('modules-config'))).status, 204);
      await statusBecomes(srv, 'test1', /^booting: modules-config$/);
      await post(srv, ip, finish('modules-config/config-runcmd'));
      await post(srv, ip, finish('modules-final'));
      const ready = await statusBecomes(srv, 'test1', /^ready \d+s$/);
      assert.ok((ready.provisioning?.seconds ?? -1) >= 0);
      const waited = await cli(['instances', 'wait', 'test1', '--json', ...conf(srv.dir)]);
      assert.equal(waited.status, 0, waited.stderr);
      assert.equal((JSON.parse(waited.stdout) as { result: string }).result, 'ready');
      const shown = await cli(['instances', 'show', 'test1', ...conf(srv.dir)]);
      assert.match(shown.stdout, /finish\s+modules-config\/config-runcmd SUCCESS: ran modules-config\/config-runcmd/);
      // The hook uploads the domain as it starts again: a new boot, waiting for its first request.
      await upload(srv.port, VM1);
      const list = await cli(['instances', 'list', ...conf(srv.dir)]);
      assert.match(list.stdout, /^NAME .* STATUS\n/);
      assert.match(list.stdout, /^test1 .* waiting$/m);
      const timedOut = await cli(['instances', 'wait', 'test1', '--timeout', '1', ...conf(srv.dir)]);
      assert.equal(timedOut.status, 2, 'a VM that does not finish is a timeout');
      assert.match(timedOut.stderr, /test1: waiting: not finished/);
    });
  });

  test('a module that fails is named; wait exits 1 and says why; instance-id read after the end is a new boot', async () => {
    await withVms({}, [VM1], async (srv, ip) => {
      await request(srv.port, '/latest/meta-data/instance-id', { from: ip });
      await post(srv, ip, finish('modules-config/config-runcmd', 'FAIL', 'running config-runcmd with frequency once-per-instance'));
      await post(srv, ip, finish('modules-config', 'FAIL'));
      await post(srv, ip, finish('modules-final'));
      await statusBecomes(srv, 'test1', /^failed: config-runcmd$/);
      const waited = await cli(['instances', 'wait', 'test1', ...conf(srv.dir)]);
      assert.equal(waited.status, 1);
      assert.match(waited.stderr, /test1: failed: config-runcmd \(running config-runcmd with frequency once-per-instance\)/);
      // A reboot inside the guest (no upload): cloud-init asks for its instance id again.
      await request(srv.port, '/latest/meta-data/', { from: ip });
      await statusBecomes(srv, 'test1', /^failed/);
      await request(srv.port, '/latest/meta-data/instance-id', { from: ip });
      await statusBecomes(srv, 'test1', /^no report$/);
    });
  });

  test('the outcome observer hears each boot\'s end once (the provisioning counters attach there)', async () => {
    await withVms({}, [VM1], async (srv, ip) => {
      const heard: [string, number | null][] = [];
      srv.running.services.provisioning.onOutcome = (outcome, seconds) => heard.push([outcome, seconds]);
      await request(srv.port, '/latest/meta-data/instance-id', { from: ip });
      await post(srv, ip, finish('modules-final'));
      await statusBecomes(srv, 'test1', /^ready/);
      await post(srv, ip, finish('modules-final'));
      await new Promise((r) => setTimeout(r, 250));
      assert.equal(heard.length, 1);
      assert.equal(heard[0]?.[0], 'ready');
      await request(srv.port, '/latest/meta-data/instance-id', { from: ip });
      await post(srv, ip, finish('modules-final', 'FAIL'));
      await statusBecomes(srv, 'test1', /^failed/);
      assert.deepEqual(heard.map(([o]) => o), ['ready', 'failed'], 'the next boot is heard again');
    });
  });

  test('GET /metrics counts the reports and each boot\'s outcome', async () => {
    await withVms({}, [VM1], async (srv, ip) => {
      await request(srv.port, '/latest/meta-data/instance-id', { from: ip });
      await post(srv, ip, finish('modules-final'));
      await statusBecomes(srv, 'test1', /^ready/);
      const m = await request(srv.port, '/metrics', { from: '127.0.0.1' });
      assert.equal(m.status, 200);
      assert.match(m.body, /^mdserver_provisioning_total\{outcome="ready"\} 1$/m);
      assert.match(m.body, /^mdserver_provisioning_total\{outcome="failed"\} 0$/m);
      assert.match(m.body, /^mdserver_provisioning_ready_seconds_count 1$/m);
      assert.match(m.body, /^mdserver_requests_total\{format="events",status="2xx"\} 1$/m);
    });
  });

  test('phone_home alone (form data) marks the boot ready', async () => {
    await withVms({}, [VM1], async (srv, ip) => {
      await request(srv.port, '/latest/meta-data/instance-id', { from: ip });
      const r = await post(srv, ip, 'instance_id=i-1&hostname=test1&fqdn=test1.example&pub_key_rsa=N%2FA',
        { 'Content-Type': 'application/x-www-form-urlencoded' });
      assert.equal(r.status, 204);
      const s = await statusBecomes(srv, 'test1', /^ready/);
      assert.equal(s.provisioning?.phase, 'ready');
    });
  });

  test('attacks: another VM\'s status, the host, bad methods and hostile bodies', async () => {
    await withVms({}, [VM1, VM2], async (srv, ip1, ip2) => {
      await request(srv.port, '/latest/meta-data/instance-id', { from: ip1 });
      // A VM posts what it likes, but only its own status moves.
      await post(srv, ip2, finish('modules-final', 'FAIL'));
      await statusBecomes(srv, 'test2', /^failed: modules-final$/);
      assert.equal((await listed(srv))['test1']?.provisioning?.text, 'no report');
      // Unknown callers and the host have no instance to report for.
      assert.equal((await post(srv, '127.0.0.1', finish('modules-final'))).status, 400);
      assert.equal((await post(srv, '127.9.9.9', finish('modules-final'))).status, 400);
      assert.equal((await request(srv.port, '/cloud-init/events', { from: ip1 })).status, 405);
      // Malformed, wrong-shaped, oversize and deep bodies.
      assert.equal((await post(srv, ip1, '{"name": ')).status, 400);
      assert.equal((await post(srv, ip1, '[1, 2]')).status, 400);
      assert.equal((await post(srv, ip1, { ...finish('x'), result: 'GREAT' })).status, 400);
      assert.equal((await post(srv, ip1, { ...start('x'), name: 42 })).status, 400);
      assert.equal((await post(srv, ip1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))).status, 400);
      assert.equal((await post(srv, ip1, 'x'.repeat(64 * 1024 + 1))).status, 413);
      assert.equal((await post(srv, ip1, '['.repeat(60000) + ']'.repeat(60000))).status, 413);
      assert.equal((await post(srv, ip1, '['.repeat(30000) + ']'.repeat(30000))).status, 400);
      // Control characters and a huge name: stored on one line, cut down.
      const hostile = { ...start(`modules-final\x1b[2J\r\nFAKE LINE${'A'.repeat(5000)}`), description: 'd\x07\u202eesc\u0085' };
      assert.equal((await post(srv, ip1, hostile)).status, 204);
      const s = await statusBecomes(srv, 'test1', /^booting/);
      assert.ok(!/[\x00-\x1f\x7f-\x9f\u202e]/.test(s.provisioning?.text ?? ''), 'no control characters');
      assert.ok((s.provisioning?.text.length ?? 0) <= 140, 'the stage is bounded');
      const shown = await cli(['instances', 'show', 'test1', ...conf(srv.dir)]);
      assert.ok(!/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/.test(shown.stdout), 'show prints no control characters');
      assert.ok(!/^FAKE LINE/m.test(shown.stdout), 'an event cannot start a line of its own');
    });
  });

  test('the built-in user-data and the vendor-data point reporting at the address the VM reached; report_events = no turns vendor-data off', async () => {
    const endpoint = (port: number) => `endpoint: "http://127.0.0.1:${port}/cloud-init/events"`;
    await withVms({}, [VM1], async (srv, ip) => {
      const ud = await request(srv.port, '/latest/user-data', { from: ip });
      assert.match(ud.body, new RegExp(`^reporting:\\n  mdserver: \\{type: webhook, ${endpoint(srv.port)}\\}$`, 'm'));
    });
    await withVms({ mdserver: { report_events: 'no' } }, [VM1], async (srv, ip) => {
      assert.equal((await request(srv.port, '/nocloud/vendor-data', { from: ip })).body, '');
      assert.equal((await request(srv.port, '/openstack/latest/vendor_data.json', { from: ip })).body, '{}');
    });
  });

  test('a flood of events keeps the last 200, and the rate limit applies to posts', async () => {
    await withVms({ mdserver: { rate_limit: 5, rate_burst: 250 } }, [VM1], async (srv, ip) => {
      const started = Date.now();
      const codes = new Map<number, number>();
      for (let i = 0; i < 400; i++) {
        const r = await post(srv, ip, start(`modules-config/config-m${i}`));
        codes.set(r.status, (codes.get(r.status) ?? 0) + 1);
      }
      assert.ok((codes.get(429) ?? 0) > 0, `some posts are rate limited: ${JSON.stringify([...codes])}`);
      await new Promise((r) => setTimeout(r, 300));
      const shown = await adminRequest(srv.running.adminSocket as string, 'GET', '/instances/test1');
      const events = (shown.body as InstanceJson).events ?? [];
      assert.equal(events.length, 200, 'only the last 200 are kept');
      assert.ok(Date.now() - started < 20000);
    });
  });
});
