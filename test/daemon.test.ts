// mdserver as systemd runs it: a process of its own that reports readiness over NOTIFY_SOCKET and
// reloads its configuration on SIGHUP.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { domainXml, freePort, request, tempDir, VM1, writeConfig, type Sections } from './helpers.js';
import { waitFor } from './netns.js';
import { spawnServer, stop } from './process.js';

// systemd's side of sd_notify: a unix datagram socket. Node has no such sockets, so Python plays
// systemd; it closes any descriptor it is sent, which is how systemd-notify's barrier completes.
const RECEIVER = `
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(msg.decode().replace("\\n", "|"), flush=True)
`;

function notifyReceiver(socketPath: string): ChildProcess & { lines: string[] } {
  const child = spawn('python3', ['-c', RECEIVER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buf = '';
  child.stdout?.on('data', (c: Buffer) => {
    buf += c.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts);
  });
  return Object.assign(child, { lines });
}

test('under systemd mdserver reports READY=1 only once the dnsmasq files exist and it answers', async () => {
  const dir = tempDir();
  const port = await freePort();
  const config = writeConfig(dir, { mdserver: { port } });
  const notifySocket = path.join(dir, 'notify.sock');
  const receiver = notifyReceiver(notifySocket);
  let server: ReturnType<typeof spawnServer> | null = null;
  try {
    await waitFor('the notify receiver', () => receiver.lines.includes('listening'));
    let seenAtReady: { opts: boolean; hosts: boolean; answered: boolean } | null = null;
    server = spawnServer(config, { NOTIFY_SOCKET: notifySocket });
    // Note the state of things the moment READY=1 arrives.
    await waitFor('READY=1', async () => {
      if (!receiver.lines.some((l) => l.startsWith('READY=1'))) return false;
      seenAtReady ??= {
        opts: fs.existsSync(path.join(dir, 'dnsmasq', 'mds.opts')),
        hosts: fs.existsSync(path.join(dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts')),
        answered: (await request(port, '/service/name')).body === 'mdserver',
      };
      return true;
    }, 30000);
    assert.deepEqual(seenAtReady, { opts: true, hosts: true, answered: true });
    const ready = receiver.lines.find((l) => l.startsWith('READY=1')) ?? '';
    assert.match(ready, new RegExp(`STATUS=serving metadata on 127\\.0\\.0\\.1:${port}`));
  } finally {
    if (server) assert.equal(await stop(server), 0);
    receiver.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGHUP reloads the configuration of a running server without failing a single request', async () => {
  const dir = tempDir();
  const port = await freePort();
  const base: Sections = { mdserver: { port } };
  const config = writeConfig(dir, base);
  const server = spawnServer(config);
  try {
    await waitFor('the server', async () => (await request(port, '/service/name')).status === 200, 30000);
    const up = await request(port, '/instance-upload', { method: 'POST', body: domainXml(VM1) });
    const ip = /ipv4=(\S+)/.exec(up.body)?.[1] ?? '';
    assert.match(ip, /^127\.1\./);

    // Four clients keep asking for the key while the configuration is swapped under them.
    let stopped = false;
    const statuses = new Map<number, number>();
    const seen = new Set<string>();
    const client = async (): Promise<void> => {
      while (!stopped) {
        const r = await request(port, '/latest/meta-data/public-keys/0/openssh-key', { from: ip });
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        seen.add(r.body);
      }
    };
    const clients = [client(), client(), client(), client()];
    for (let i = 1; i <= 5; i++) {
      writeConfig(dir, { ...base, 'public-keys': { default: `ssh-ed25519 AAAAkey${i} user@host` } });
      server.kill('SIGHUP');
      await waitFor(`reload ${i}`, () => server.output().split('configuration reloaded').length > i, 15000);
    }
    await waitFor('the last key to be served', () => seen.has('ssh-ed25519 AAAAkey5 user@host'));
    stopped = true;
    await Promise.all(clients);
    assert.deepEqual([...statuses.keys()], [200]);
    assert.ok((statuses.get(200) ?? 0) > 20, `only ${statuses.get(200)} requests were made`);

    // An invalid file on SIGHUP: every problem is logged, and the running configuration stays.
    writeConfig(dir, { ...base, mdserver: { port, rate_burst: 'lots' } });
    server.kill('SIGHUP');
    await waitFor('the refusal', () => server.output().includes('reload refused'), 15000);
    assert.match(server.output(), /\[mdserver\] rate_burst = "lots": expected a whole number/);
    const still = await request(port, '/latest/meta-data/public-keys/0/openssh-key', { from: ip });
    assert.equal(still.body, 'ssh-ed25519 AAAAkey5 user@host');
  } finally {
    assert.equal(await stop(server), 0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
