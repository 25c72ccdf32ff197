// The connection flood with real VMs: two VM namespaces each keep 300 idle connections open to
// 169.254.169.254 (reopening each as soon as it is closed), against a server whose open-file
// limit is 512, as a small `LimitNOFILE` would make it. Before the caps, the two took every
// descriptor and another VM and the host's hook were turned away; now each holds at most
// `max_connections_per_client` and everyone else is served.

import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { domainXml, VM1, VM2, type DomainSpec } from './helpers.js';
import { skipUnlessNetns, type Netns } from './netns.js';
import { cli, HOOK } from './process.js';
import { httpFrom, MDS_ADDRESS, MDS_URL, VmNet } from './vmnet.js';

const netns = skipUnlessNetns(['curl', 'prlimit']);

const VM3: DomainSpec = { name: 'bystander', uuid: '3d3d3d3d-0000-0000-0000-000000000003', mac: '52:54:00:3d:3d:03' };

/**
 * What runs on a flooding VM: `n` connections that never send a byte, each reopened half a
 * second after the server closes it; every 250 ms a line says how many are open and how many the
 * server has closed so far.
 */
const FLOODER = `
const net = require('node:net');
const [host, port, n] = process.argv.slice(1);
let open = 0, closed = 0;
function one() {
  const s = net.connect({ host, port: Number(port) });
  let up = false;
  s.on('connect', () => { up = true; open++; });
  s.on('error', () => {});
  s.resume();
  s.on('close', () => { if (up) { open--; closed++; } setTimeout(one, 500); });
}
for (let i = 0; i < Number(n); i++) one();
setInterval(() => process.stdout.write(JSON.stringify({ open, closed }) + '\\n'), 250);
`;

interface Flood {
  readonly child: ChildProcess;
  /** The flooder's latest report. */
  last(): { open: number; closed: number };
}

function flood(ns: Netns, n: number): Flood {
  const child = ns.spawn(process.execPath, ['-e', FLOODER, MDS_ADDRESS, '80', String(n)]);
  let last = { open: 0, closed: 0 };
  let buf = '';
  child.stdout?.on('data', (c: Buffer) => {
    buf += c.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    const line = lines.at(-1);
    if (line) last = JSON.parse(line) as typeof last;
  });
  return { child, last: () => last };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('two VMs flooding idle connections leave another VM, the host\'s upload and the hook unharmed', netns, async (t) => {
  const net = await VmNet.start({ wrap: ['prlimit', '--nofile=512:512', '--'] });
  const floods: Flood[] = [];
  try {
    const a = await net.addVm(VM1);
    const b = await net.addVm(VM2);
    const bystander = await net.addVm(VM3);
    floods.push(flood(a.ns, 300), flood(b.ns, 300));
    // The flood must be under way before the others are tried: each flooder has reported that
    // the server turned away what it holds beyond its cap. Node starting in a namespace on a
    // busy machine can take seconds, so this waits (bounded) rather than sleeping a fixed time.
    const deadline = Date.now() + 30_000;
    while (!floods.every((f) => f.last().closed >= 268)) {
      assert.ok(Date.now() < deadline, `the flood never got under way: ${JSON.stringify(floods.map((f) => f.last()))}`);
      await sleep(250);
    }

    for (let i = 0; i < 5; i++) {
      const r = httpFrom(bystander.ns, `${MDS_URL}/latest/meta-data/instance-id`, { timeoutSeconds: 5 });
      assert.equal(r.status, 200);
      assert.equal(r.body, `i-${bystander.ipv4}`);
    }
    const up = net.upload({ name: 'late', uuid: '4d4d4d4d-0000-0000-0000-000000000004', mac: '52:54:00:4d:4d:04' });
    assert.equal(up.status, 201, up.body);
    // The hook as libvirt runs it on the host, told to use the admin socket; its HTTP fallback
    // points nowhere, so a registration can only have come through the socket.
    const defaults = path.join(net.dir, 'default-mdserver');
    fs.writeFileSync(defaults, `MDSERVER_SOCKET=${path.join(net.dir, 'run', 'admin.sock')}\nMDSERVER_URL=http://127.0.0.1:9\n`);
    const hooked = { name: 'hooked', uuid: '5d5d5d5d-0000-0000-0000-000000000005', mac: '52:54:00:5d:5d:05' };
    const h = net.host.try('env', [`MDSERVER_DEFAULTS=${defaults}`, 'MDSERVER_HOOK_SYSLOG=no', HOOK, hooked.name, 'prepare', 'begin', '-'], domainXml(hooked), 20000);
    assert.equal(h.status, 0);
    assert.match(h.stderr, /mdserver-hook: prepare hooked: registered hooked mac=52:54:00:5d:5d:05 ipv4=10\.199\./);

    // What the server holds, as `mdserver status` reports it: 32 per flooder (and at most the
    // bystander's one). The flooders' own counts also include connections the kernel has queued
    // for the server but it has not accepted (and closed) yet, which come in bursts: the least
    // each reported over two seconds is what it really held.
    const status = await cli(['status', '--json', '--socket', path.join(net.dir, 'run', 'admin.sock')]);
    const held = (JSON.parse(status.stdout) as { connections: { open: number; clients: number } }).connections;
    t.diagnostic(`server: ${held.open} VM connections from ${held.clients} addresses`);
    assert.ok(held.open <= 2 * 32 + 1, `the server holds ${held.open} VM connections`);
    const least = floods.map(() => Infinity);
    for (let i = 0; i < 8; i++) {
      floods.forEach((f, j) => (least[j] = Math.min(least[j] as number, f.last().open)));
      await sleep(250);
    }
    const totals = floods.map((f) => f.last());
    t.diagnostic(`flooders: least held ${JSON.stringify(least)}, ${JSON.stringify(totals)}`);
    for (const [j, f] of totals.entries()) {
      assert.ok((least[j] as number) <= 32, `a flooder held at least ${least[j]} connections`);
      assert.ok(f.closed >= 268, `the server closed ${f.closed} of a flooder's connections`);
    }
    const log = net.serverLog();
    for (const vm of [a, b]) {
      const lines = log.split('\n').filter((l) => l.includes('this client holds too many') && l.includes(`client="${vm.ipv4}"`));
      assert.equal(lines.length, 1, `one log line for ${vm.ipv4}'s refused connections, not one per connection`);
    }
  } finally {
    for (const f of floods) f.child.kill('SIGKILL');
    await net.stop();
  }
});
