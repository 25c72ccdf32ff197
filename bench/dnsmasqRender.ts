// The CPU one rewrite of dnsmasq's host files costs, stage by stage, for N instances held in an
// InstanceIndex (the PostgreSQL store's memory): the host entries, their unique names, rendering
// and the two atomic writes, then the whole rewrite as DnsmasqFiles.flush runs it, with the
// longest time the event loop was blocked, at once and when spaced after a burst (in slices).
// Everything is written into a temporary directory that is removed afterwards. Not part of
// `npm run bench`.
// Usage: node dist/bench/dnsmasqRender.js [N]   (default 100000)

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../src/config/index.js';
import { writeAtomic } from '../src/atomic.js';
import { DnsmasqFiles } from '../src/dnsmasq/files.js';
import { checkHosts, dnsmasqPaths, renderDhcpHosts, renderDnsHosts } from '../src/dnsmasq/render.js';
import { Registry } from '../src/instances/registry.js';
import { silenceLogging } from '../src/log.js';
import { InstanceIndex } from '../src/store/instanceIndex.js';
import type { Instance, Store } from '../src/store/store.js';

const ROUNDS = 7;

function config(dir: string): Config {
  const file = path.join(dir, 'mdserver.conf');
  fs.mkdirSync(path.join(dir, 'userdata'));
  fs.writeFileSync(file, [
    '[mdserver]', `userdata_dir = ${path.join(dir, 'userdata')}`, `db_file = ${path.join(dir, 'mdserver.db')}`, 'logfile =', 'ipv6 = yes',
    '[dnsmasq]', `base_dir = ${path.join(dir, 'dnsmasq')}`, `run_dir = ${path.join(dir, 'run')}`,
    'net_address = 10.64.0.0', 'net_prefix = 14', 'gateway = 10.64.0.1',
    'use_dns = yes', 'domain = vm.example', 'prefix = kvm-', 'entry_order = base,prefix,domain', '',
  ].join('\n'));
  return loadConfig(file).config;
}

/** N instances as uploads make them: names of mixed case, one in a thousand sharing a host name. */
function fill(index: InstanceIndex, n: number): void {
  for (let i = 0; i < n; i++) {
    const a = 0x0a400000 + 10 + i;
    const ipv4 = [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.');
    const hex = i.toString(16).padStart(12, '0');
    const name = i % 1000 === 999 ? `Vm-${String(i - 1).padStart(6, '0')}` : `vm-${String(i).padStart(6, '0')}`;
    const inst: Instance = {
      name: `${name}${i % 1000 === 999 ? '_' : ''}`, hostName: name, uuid: `${hex.slice(0, 8)}-0000-4000-8000-${hex}`,
      mac: `52:54:${hex.slice(4, 6)}:${hex.slice(6, 8)}:${hex.slice(8, 10)}:${hex.slice(10, 12)}`, ipv4, ipv6: null,
      location: 'bench', metadata: { 'user-data': 'x' }, arch: 'x86_64', nwfilter: 'clean-traffic', host: 'host-a',
      firstSeen: 1_700_000_000_000 + i, lastUpdate: 1_700_000_000_000 + i,
    };
    index.rows.put(inst.uuid, 1, inst);
  }
}

function cpuMs<T>(f: () => T): [T, number] {
  const t = process.cpuUsage();
  const r = f();
  const u = process.cpuUsage(t);
  return [r, (u.user + u.system) / 1000];
}

/** The longest the event loop went without turning, as a 1 ms timer sees it, while `run` ran. */
async function longestBlock(run: () => unknown): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  await new Promise((resolve) => setTimeout(resolve, 5));
  last = performance.now();
  await run();
  await new Promise((resolve) => setTimeout(resolve, 5));
  clearInterval(ticker);
  return longest;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 100_000);
  if (!Number.isInteger(n) || n < 1 || n > 250_000) throw new Error('N must be a whole number from 1 to 250000');
  silenceLogging();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mds-render-bench-'));
  try {
    const cfg = config(dir);
    const index = new InstanceIndex();
    fill(index, n);
    // Registry.hostEntries asks the store for this one thing.
    const store = { hostEntries: () => index.hostEntries() } as unknown as Store;
    const registry = new Registry(() => cfg, store, { scheduleWrite: () => undefined, flush: () => true });
    let rewritten = (): void => undefined;
    // A short bound on the gap, so that a rewrite right after another is a spaced one (in slices).
    const files = new DnsmasqFiles(() => cfg, () => registry.hostEntries(), 5000, { rewritten: () => rewritten() }, 100);
    const p = dnsmasqPaths(cfg);
    fs.mkdirSync(path.dirname(p.dhcpHosts), { recursive: true });
    fs.mkdirSync(p.dnsHostsDir, { recursive: true });
    const stages = new Map<string, number[]>();
    const note = (stage: string, ms: number): void => {
      stages.set(stage, [...(stages.get(stage) ?? []), ms]);
    };
    // Each rewrite follows a change, as in a cluster: one record replaced before every stage.
    let version = 1;
    const change = (): void => {
      const i = index.byName('vm-000000') as Instance;
      index.rows.put(i.uuid, ++version, { ...i, lastUpdate: i.lastUpdate + 1 });
    };
    for (let round = 0; round < ROUNDS; round++) {
      change();
      const [, indexMs] = cpuMs(() => index.hostEntries());
      note('InstanceIndex.hostEntries', indexMs);
      change();
      const [entries, entriesMs] = cpuMs(() => registry.hostEntries());
      note('Registry.hostEntries (incl. the above)', entriesMs);
      const [checked, checkMs] = cpuMs(() => checkHosts(entries));
      note('checkHosts (nothing remembered)', checkMs);
      const [dhcp, dhcpMs] = cpuMs(() => renderDhcpHosts(checked.safe, cfg.dnsmasq.leaseLen, cfg.dnsmasq.serviceNames));
      note('renderDhcpHosts (nothing remembered)', dhcpMs);
      const [dns, dnsMs] = cpuMs(() => renderDnsHosts(cfg, checked.safe));
      note('renderDnsHosts (nothing remembered)', dnsMs);
      const [, writeMs] = cpuMs(() => {
        writeAtomic(p.dhcpHosts, dhcp);
        writeAtomic(p.dnsHosts, dns);
      });
      note('two atomic writes', writeMs);
      const fresh = new DnsmasqFiles(() => cfg, () => registry.hostEntries());
      change();
      note('flush, nothing remembered (start-up, reload)', cpuMs(() => fresh.flush())[1]);
      change();
      const [, flushMs] = cpuMs(() => files.flush());
      note('flush after a change (the whole rewrite)', flushMs);
      note('longest event-loop block in a rewrite at once (wall)', await longestBlock(() => {
        change();
        files.flush();
      }));
      note('longest event-loop block in a spaced rewrite (wall)', await longestBlock(() => new Promise<void>((resolve) => {
        rewritten = resolve;
        change();
        files.scheduleWrite();
      })));
      rewritten = () => undefined;
    }
    process.stdout.write(`${n} instances, median CPU ms of ${ROUNDS} rounds\n`);
    for (const [stage, ms] of stages) process.stdout.write(`  ${stage.padEnd(42)} ${median(ms).toFixed(1).padStart(8)}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
