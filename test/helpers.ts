// Test support: temporary configurations, a real server on loopback, requests from chosen
// source addresses (all of 127.0.0.0/8 is local on Linux), and domain XML documents.

import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { silenceLogging } from '../src/log.js';
import { startServer, type Running } from '../src/server.js';

export type Sections = Record<string, Record<string, string | number>>;

/** The VM network the loopback tests use: VMs are 127.1.x.y, the host uploads from 127.0.0.1. */
export const TEST_NET = { net_address: '127.1.0.0', net_prefix: '16', gateway: '127.1.0.1' };

/** Every directory tempDir made in this process; see the exit handler below. */
const made = new Set<string>();

// node --test runs each test file in its own process, so removing the directories when that
// process exits cleans up after every test in the file, including one whose assertion failed
// before its own cleanup ran, or one that never removed what it made.
process.on('exit', () => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

/** A new empty directory under the system's temporary directory, removed at the latest on exit. */
export function tempDir(prefix = 'mdserver-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.add(dir);
  return dir;
}

export function iniText(sections: Sections): string {
  return Object.entries(sections)
    .map(([name, keys]) => `[${name}]\n${Object.entries(keys).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`)
    .join('\n');
}

/** Writes a complete test configuration under `dir`, with `extra` merged over the defaults. */
export function writeConfig(dir: string, extra: Sections = {}): string {
  const base: Sections = {
    mdserver: {
      port: 0,
      listen_address: '127.0.0.1',
      userdata_dir: path.join(dir, 'userdata'),
      db_file: path.join(dir, 'mdserver.db'),
      logfile: '',
    },
    'public-keys': { default: 'ssh-ed25519 AAAAdefaultkey user@host', second: 'ssh-rsa AAAAsecondkey other@host' },
    dnsmasq: { ...TEST_NET, base_dir: path.join(dir, 'dnsmasq'), run_dir: path.join(dir, 'run'), interface: 'lo' },
  };
  const merged: Sections = { ...base };
  for (const [s, keys] of Object.entries(extra)) merged[s] = { ...(merged[s] ?? {}), ...keys };
  fs.mkdirSync(path.join(dir, 'userdata'), { recursive: true });
  const file = path.join(dir, 'mdserver.conf');
  fs.writeFileSync(file, iniText(merged));
  return file;
}

export interface TestServer {
  dir: string;
  running: Running;
  port: number;
  close(): Promise<void>;
}

let silenced = false;

export async function startTestServer(extra: Sections = {}, dir = tempDir()): Promise<TestServer> {
  if (!silenced && !process.env['MDSERVER_TEST_LOGS']) {
    silenceLogging();
    silenced = true;
  }
  const file = writeConfig(dir, extra);
  const running = await startServer(file, { keepLogging: true });
  return {
    dir,
    running,
    port: running.address.port,
    async close() {
      await running.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  method?: string;
  from?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  host?: string;
}

/** One HTTP request to the test server from source address `from` (default 127.0.0.1). */
export function request(port: number, urlPath: string, o: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: o.host ?? '127.0.0.1',
        port,
        path: urlPath,
        method: o.method ?? 'GET',
        localAddress: o.from ?? '127.0.0.1',
        headers: o.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (o.body !== undefined) req.write(o.body);
    req.end();
  });
}

export interface DomainSpec {
  name: string;
  uuid: string;
  mac: string;
  network?: string;
  metadata?: Record<string, string>;
  arch?: string;
  extraInterfaces?: string;
  /** `<filterref filter=...>` on the metadata interface (libvirt's clean-traffic, or another). */
  nwfilter?: string;
}

export function domainXml(d: DomainSpec): string {
  const md = d.metadata
    ? `<metadata xmlns:mdserver="urn:md_server:domain_metadata">${Object.entries(d.metadata)
        .map(([k, v]) => `<mdserver:${k}>${v}</mdserver:${k}>`)
        .join('')}</metadata>`
    : '';
  return `<domain type='kvm' id='7'>
  <name>${d.name}</name>
  <uuid>${d.uuid}</uuid>
  ${md}
  <memory unit='KiB'>1048576</memory>
  <os><type arch='${d.arch ?? 'x86_64'}' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    ${d.extraInterfaces ?? ''}
    <interface type='network'>
      <mac address='${d.mac}'/>
      <source network='${d.network ?? 'mds'}' bridge='br-mds'/>
      <target dev='vnet3'/>
      <model type='virtio'/>${d.nwfilter ? `
      <filterref filter='${d.nwfilter}'/>` : ''}
    </interface>
  </devices>
</domain>
`;
}

/**
 * `spec`'s domain (given without metadata) grown to `bytes` bytes (or just under) with distinct
 * empty elements in its metadata: valid XML that libvirt would keep, and costly for an XML
 * parser, whose work grows with the number of distinct element names.
 */
export function hostileDomainXml(bytes: number, spec: DomainSpec | string = VM1): string {
  const d = typeof spec === 'string' ? { ...VM1, name: spec } : spec;
  const wrap = (filler: string): string => domainXml(d).replace('<memory', `<metadata>${filler}</metadata>\n  <memory`);
  const budget = bytes - Buffer.byteLength(wrap(''));
  let filler = '';
  for (let i = 0; ; i++) {
    const el = `<x${i}/>`;
    if (filler.length + el.length > budget) break;
    filler += el;
  }
  return wrap(filler);
}

/** Uploads a domain from the host and returns the allocated address. */
export async function upload(port: number, spec: DomainSpec): Promise<string> {
  const r = await request(port, '/instance-upload', {
    method: 'POST',
    body: domainXml(spec),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  const m = /ipv4=(\S+)/.exec(r.body);
  if (r.status >= 300 || !m) throw new Error(`upload failed: ${r.status} ${r.body}`);
  return m[1] as string;
}

export const VM1: DomainSpec = { name: 'test1', uuid: 'becb25c7-b581-4ecd-b60e-a9942ad18879', mac: '52:54:00:3a:cf:41' };
export const VM2: DomainSpec = { name: 'test2', uuid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', mac: '52:54:00:11:22:33' };

/** The address each of `specs` got, in the same order. */
export type Addresses<S extends readonly DomainSpec[]> = { -readonly [K in keyof S]: string };

/**
 * A test server with `specs` uploaded from the host in order; returns the server followed by each
 * domain's address. A failed upload closes the server before the error reaches the test.
 */
export async function startWithVms<const S extends readonly DomainSpec[]>(extra: Sections, specs: S, dir?: string): Promise<[TestServer, ...Addresses<S>]> {
  const srv = await startTestServer(extra, dir);
  try {
    const ips: string[] = [];
    for (const spec of specs) ips.push(await upload(srv.port, spec));
    return [srv, ...ips] as [TestServer, ...Addresses<S>];
  } catch (e) {
    await srv.close();
    throw e;
  }
}

/** Runs `body` against a fresh server holding `specs`, and closes the server however `body` ends. */
export async function withVms<const S extends readonly DomainSpec[]>(
  extra: Sections,
  specs: S,
  body: (srv: TestServer, ...ips: Addresses<S>) => Promise<void>,
  dir?: string,
): Promise<void> {
  const [srv, ...ips] = await startWithVms(extra, specs, dir);
  try {
    await body(srv, ...ips);
  } finally {
    await srv.close();
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago, for a server started as its own process. */
export async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}
