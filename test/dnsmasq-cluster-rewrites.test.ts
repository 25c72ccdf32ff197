// A cluster host rewrites dnsmasq's files from its in-memory copy of the instances after every
// burst of changes, remembering from one rewrite to the next the order of the instances, each
// host's entry and each entry's lines. These tests drive that copy (the PostgreSQL store's
// InstanceIndex) through a long run of changes of every kind, as other hosts' commits and
// catch-ups make them, and hold every rewrite to the files written from scratch for the rows
// held at that moment.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig, type Config } from '../src/config/index.js';
import { DnsmasqFiles } from '../src/dnsmasq/files.js';
import { dnsmasqPaths, type HostEntry } from '../src/dnsmasq/render.js';
import { Registry } from '../src/instances/registry.js';
import { silenceLogging } from '../src/log.js';
import { InstanceIndex } from '../src/store/instanceIndex.js';
import type { Instance, Store } from '../src/store/store.js';
import { iniText, tempDir } from './helpers.js';

silenceLogging();

function configFor(dir: string, dnsmasq: Record<string, string>, extra: Record<string, Record<string, string>> = {}): Config {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'mdserver.conf');
  fs.writeFileSync(file, iniText({
    ...extra,
    mdserver: { listen_address: '169.254.169.254', ...(extra['mdserver'] ?? {}) },
    dnsmasq: { base_dir: path.join(dir, 'base'), run_dir: path.join(dir, 'run'), net_address: '10.122.0.0', net_prefix: '16', gateway: '10.122.0.1', ...dnsmasq },
  }));
  return loadConfig(file).config;
}

/** A small deterministic random source, so that a failure can be replayed. */
function random(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

function instance(i: number, over: Partial<Instance> = {}): Instance {
  const hex = i.toString(16).padStart(12, '0');
  const name = `vm-${String(i).padStart(5, '0')}`;
  return {
    name, hostName: name, uuid: `0000${hex.slice(4, 8)}-0000-4000-8000-${hex}`, mac: `52:54:00:${hex.slice(6, 8)}:${hex.slice(8, 10)}:${hex.slice(10, 12)}`,
    ipv4: `10.122.${(i >> 8) & 255}.${i & 255}`, ipv6: null, location: 'here', metadata: {}, arch: null, nwfilter: 'clean-traffic',
    host: i % 3 === 0 ? 'host-b' : 'host-a', firstSeen: i, lastUpdate: i, ...over,
  };
}

/** The files as a host that read every row afresh writes them: a new index, registry and files. */
function fromScratch(cfg: Config, rows: readonly Instance[], dir: string): string {
  const index = new InstanceIndex();
  rows.forEach((r, v) => index.rows.put(r.uuid, v + 1, r));
  const c = { ...cfg, dnsmasq: { ...cfg.dnsmasq, baseDir: dir, runDir: dir } } as Config;
  const registry = new Registry(() => c, { hostEntries: () => index.hostEntries() } as unknown as Store, { scheduleWrite: () => undefined, flush: () => true });
  const files = new DnsmasqFiles(() => c, () => registry.hostEntries());
  assert.equal(files.flush(), true);
  const p = dnsmasqPaths(c);
  return fs.readFileSync(p.dhcpHosts, 'utf8') + fs.readFileSync(p.dnsHosts, 'utf8');
}

describe('rewrites of a cluster host\'s dnsmasq files through a run of changes', () => {
  const dir = tempDir();
  const cases: [string, Record<string, string>, Record<string, Record<string, string>>][] = [
    ['IPv6, domain and prefix', { use_dns: 'yes', domain: 'vm.example', prefix: 'kvm-', entry_order: 'base,prefix,domain' }, { mdserver: { ipv6: 'yes' } }],
    ['dhcp_scope = local', { domain: 'vm.example' }, { store: { url: 'postgresql://mds@127.0.0.1:1/mds', dhcp_scope: 'local', host_name: 'host-a' } }],
  ];
  for (const [what, dnsmasq, extra] of cases) {
    test(`every rewrite lists exactly the rows held at that moment, in name order (${what})`, () => {
      const cfg = configFor(path.join(dir, what.replace(/\W+/g, '-')), dnsmasq, extra);
      const index = new InstanceIndex();
      const store = { hostEntries: () => index.hostEntries() } as unknown as Store;
      const registry = new Registry(() => cfg, store, { scheduleWrite: () => undefined, flush: () => true });
      const files = new DnsmasqFiles(() => cfg, () => registry.hostEntries());
      const p = dnsmasqPaths(cfg);
      const written = (): string => fs.readFileSync(p.dhcpHosts, 'utf8') + fs.readFileSync(p.dnsHosts, 'utf8');
      let version = 0;
      for (let i = 0; i < 2000; i++) index.rows.put(instance(i).uuid, ++version, instance(i));
      const rnd = random(7);
      const removed: Instance[] = [];
      const handedOut: { list: readonly unknown[]; copy: unknown[] }[] = [];
      for (let step = 0; step < 60; step++) {
        for (let k = 1 + rnd(12); k > 0; k--) {
          const held = index.byName(`vm-${String(rnd(2100)).padStart(5, '0')}`);
          const kind = rnd(8);
          if (!held) {
            const i = 2000 + rnd(100000);
            index.rows.put(instance(i).uuid, ++version, instance(i));
          } else if (kind === 0) {
            index.rows.remove(held.uuid, ++version);
            removed.push(held);
          } else if (kind === 1) {
            // Renamed: its place in the order changes; the name may sort anywhere.
            const name = `${String.fromCharCode(97 + rnd(26))}-${held.name}`;
            index.rows.put(held.uuid, ++version, { ...held, name, hostName: name });
          } else if (kind === 2) {
            index.rows.put(held.uuid, ++version, { ...held, ipv4: `10.122.200.${rnd(250) + 2}` });
          } else if (kind === 3) {
            // Another host's VM takes a host name that exists, in other case (a database from before the rule).
            index.rows.put(held.uuid, ++version, { ...held, hostName: `VM-${String(rnd(2000)).padStart(5, '0')}` });
          } else if (kind === 4 && removed.length > 0) {
            // The very record removed before comes back (a catch-up after a cut), as the same object.
            const back = removed.pop() as Instance;
            if (!index.byUuid(back.uuid) && !index.byName(back.name)) index.rows.put(back.uuid, ++version, back);
          } else if (kind === 5) {
            // The same object again at a newer version (a write's own commit, then its catch-up).
            index.rows.put(held.uuid, ++version, held);
          } else {
            index.rows.put(held.uuid, ++version, { ...held, host: held.host === 'host-a' ? 'host-b' : 'host-a', lastUpdate: version });
          }
        }
        const list = index.hostEntries();
        handedOut.push({ list, copy: [...list] });
        assert.equal(files.flush(), true);
        const rows = [...index.all()];
        assert.deepEqual(rows.map((r) => r.name), rows.map((r) => r.name).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
        assert.equal(rows.length, index.count());
        assert.equal(written(), fromScratch(cfg, rows, path.join(dir, 'scratch')), `rewrite ${step}`);
      }
      // A list handed out is never changed by the changes that came after it.
      for (const h of handedOut) assert.deepEqual(h.list, h.copy);
      assert.ok(removed.length + index.count() > 2000);
    });
  }

  test('a reload between two rewrites gives the new configuration\'s lines for every host, changed or not', () => {
    const d = path.join(dir, 'reload');
    let cfg = configFor(d, { domain: 'vm.example', prefix: 'kvm-', entry_order: 'base,prefix,domain' });
    const index = new InstanceIndex();
    for (let i = 0; i < 500; i++) index.rows.put(instance(i).uuid, i + 1, instance(i));
    const registry = new Registry(() => cfg, { hostEntries: () => index.hostEntries() } as unknown as Store, { scheduleWrite: () => undefined, flush: () => true });
    const files = new DnsmasqFiles(() => cfg, () => registry.hostEntries());
    assert.equal(files.flush(), true);
    const p = dnsmasqPaths(cfg);
    assert.match(fs.readFileSync(p.dnsHosts, 'utf8'), /^10\.122\.0\.7 vm-00007 kvm-vm-00007 kvm-vm-00007\.vm\.example$/m);
    cfg = configFor(d, { domain: 'other.example', entry_order: 'domain', lease_len: '900' }, { mdserver: { ipv6: 'yes' } });
    assert.equal(files.flush(), true);
    const dns = fs.readFileSync(p.dnsHosts, 'utf8');
    assert.match(dns, /^10\.122\.0\.7 vm-00007\.other\.example$/m);
    assert.match(dns, /^fd00:ec2::7 vm-00007\.other\.example$/m);
    assert.match(fs.readFileSync(p.dhcpHosts, 'utf8'), /^52:54:00:00:00:07,id:\*,10\.122\.0\.7,\[fd00:ec2::7\],vm-00007,900$/m);
    assert.doesNotMatch(dns, /kvm-/);
  });

  describe('a rewrite spaced after a burst runs in slices', () => {
    const many = (n: number, tag: string): HostEntry[] => Array.from({ length: n }, (_, i) => ({
      hostName: `${tag}${i}`, mac: `52:54:00:${hex(i >> 16)}:${hex(i >> 8)}:${hex(i)}`, ipv4: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, ipv6: null,
    }));
    /**
     * The longest gap between rewrites. A change noted within the gap after a rewrite is written
     * spaced, in slices, which is what these tests are about; noted after it, it would be written
     * at once. Generous, and the lists built before the first rewrite, so that a loaded machine
     * (a collection, a slow allocation) cannot push the change past the gap.
     */
    const SPACED = 2000;
    /** Counts the turns of the event loop (setImmediate callbacks) until stopped. */
    const turns = (): { count: () => number; stop: () => void } => {
      let n = 0;
      let on = true;
      const tick = (): void => {
        n++;
        if (on) setImmediate(tick);
      };
      setImmediate(tick);
      return { count: () => n, stop: () => (on = false) };
    };

    test('the event loop turns many times while 40,000 hosts are rewritten, and the files end complete', async () => {
      const cfg = configFor(path.join(dir, 'slices'), {});
      let hosts = many(40_000, 'a');
      const changed = [...hosts.slice(0, -1), { hostName: 'changed', mac: '52:54:00:ff:ff:ff', ipv4: '10.200.0.1', ipv6: null }];
      let rewritten: () => void = () => undefined;
      let startedAt = -1;
      const loop = turns();
      const files = new DnsmasqFiles(() => cfg, () => {
        startedAt = loop.count();
        return hosts;
      }, 5000, { rewritten: () => rewritten() }, SPACED);
      try {
        assert.equal(files.flush(), true);
        hosts = changed;
        const done = new Promise<number>((resolve) => (rewritten = () => resolve(loop.count())));
        files.scheduleWrite();
        const endedAt = await done;
        // Five slices of hosts, each file's text, each file's write: the loop turned between them.
        assert.ok(endedAt - startedAt >= 6, `${endedAt - startedAt} turns of the event loop during the rewrite`);
        const dhcp = fs.readFileSync(dnsmasqPaths(cfg).dhcpHosts, 'utf8');
        assert.equal(dhcp.split('\n').length, 40_001);
        assert.match(dhcp, /^52:54:00:ff:ff:ff,id:\*,10\.200\.0\.1,changed,86400$/m);
        assert.match(fs.readFileSync(dnsmasqPaths(cfg).dnsHosts, 'utf8'), /^10\.200\.0\.1 changed$/m);
      } finally {
        loop.stop();
        files.close();
      }
    });

    test('a flush while a sliced rewrite runs (a lone upload, a deletion) writes the newer list, and the older rewrite never writes over it', async () => {
      const cfg = configFor(path.join(dir, 'overtaken'), {});
      let hosts = many(30_000, 'old');
      const mid = many(30_000, 'mid');
      const newer = many(30_000, 'new');
      let rewrites = 0;
      let overtake = false;
      const files = new DnsmasqFiles(() => cfg, () => {
        const given = hosts;
        if (overtake) {
          overtake = false;
          // Between two slices of this rewrite: a newer list, written at once.
          setImmediate(() => {
            hosts = newer;
            assert.equal(files.flush(), true);
          });
        }
        return given;
      }, 5000, { rewritten: () => rewrites++ }, SPACED);
      try {
        assert.equal(files.flush(), true);
        hosts = mid;
        overtake = true;
        files.scheduleWrite();
        const p = dnsmasqPaths(cfg);
        const started = Date.now();
        while (rewrites < 2) {
          assert.ok(Date.now() - started < 15000, 'the flush happened');
          await new Promise((r) => setTimeout(r, 10));
        }
        // Long enough for the older rewrite's remaining slices and writes, had it gone on.
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(rewrites, 2, 'the first flush and the overtaking one; the sliced rewrite stopped');
        for (const file of [p.dhcpHosts, p.dnsHosts]) {
          const text = fs.readFileSync(file, 'utf8');
          assert.match(text, /new29999/);
          assert.doesNotMatch(text, /mid\d|old\d/);
        }
      } finally {
        files.close();
      }
    });

    test('changes noted while a sliced rewrite runs get a rewrite of their own after it', async () => {
      const cfg = configFor(path.join(dir, 'again'), {});
      let hosts = many(30_000, 'a');
      const b = many(30_000, 'b');
      let rewrites = 0;
      let during: (() => void) | null = null;
      const files = new DnsmasqFiles(() => cfg, () => {
        const given = hosts;
        const d = during;
        during = null;
        if (d) setImmediate(d);
        return given;
      }, 5000, { rewritten: () => rewrites++ }, SPACED);
      try {
        assert.equal(files.flush(), true);
        hosts = b;
        during = () => {
          hosts = [...hosts, { hostName: 'latecomer', mac: '52:54:01:00:00:01', ipv4: '10.201.0.1', ipv6: null }];
          files.scheduleWrite();
        };
        files.scheduleWrite();
        const started = Date.now();
        while (rewrites < 3) {
          assert.ok(Date.now() - started < 15000, 'the change made during the rewrite reaches the files within the bound and one write');
          await new Promise((r) => setTimeout(r, 10));
        }
        const p = dnsmasqPaths(cfg);
        assert.match(fs.readFileSync(p.dhcpHosts, 'utf8'), /^52:54:01:00:00:01,id:\*,10\.201\.0\.1,latecomer,86400$/m);
        assert.match(fs.readFileSync(p.dnsHosts, 'utf8'), /^10\.201\.0\.1 latecomer$/m);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(rewrites, 3, 'one rewrite for the change, then quiet');
      } finally {
        files.close();
      }
    });
  });
});

const hex = (n: number): string => (n & 255).toString(16).padStart(2, '0');
