// Host names in DNS, with a real dnsmasq started from the files mdserver writes, in network
// namespaces: a domain whose DNS-safe name another instance already has (VICTIM, victim_) is
// refused, and a name never answers with two addresses, even from a database that holds such a
// pair from before the rule.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../src/config/index.js';
import { dnsmasqPaths, renderConf } from '../src/dnsmasq/render.js';
import { cleanupNetns, skipUnlessNetns, waitFor } from './netns.js';
import { cli } from './process.js';
import { VmNet, type Vm } from './vmnet.js';

const DNSMASQ = '/usr/sbin/dnsmasq';
const VICTIM = { name: 'VICTIM', uuid: 'd0d0d0d0-0000-4000-8000-000000000001', mac: '52:54:00:d0:d0:01' };
const COPYCAT = { name: 'victim_', uuid: 'c0c0c0c0-0000-4000-8000-000000000002', mac: '52:54:00:d0:d0:02' };
const ASKER = { name: 'asker', uuid: 'a0a0a0a0-0000-4000-8000-000000000003', mac: '52:54:00:d0:d0:03' };

/**
 * Starts dnsmasq in the host namespace from mdserver's files, as mdserver-dnsmasq.service does:
 * its configuration from `mdserver dnsmasq-conf`, its pid file where mdserver looks for it.
 */
async function startDnsmasq(net: VmNet): Promise<void> {
  const cfg = loadConfig(net.configFile).config;
  const conf = path.join(net.dir, 'dnsmasq.conf');
  fs.writeFileSync(conf, renderConf(cfg));
  const pidFile = dnsmasqPaths(cfg).pidFile;
  fs.mkdirSync(path.dirname(pidFile), { recursive: true });
  net.host.spawn(DNSMASQ, ['--keep-in-foreground', `--conf-file=${conf}`, '--log-facility=-']);
  await waitFor('dnsmasq to start', () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '');
}

/** Every IPv4 address dnsmasq answers for `name`, asked from inside `vm`. */
function addresses(net: VmNet, vm: Vm, name: string): string[] {
  const r = vm.ns.try('busybox', ['nslookup', '-type=a', name, net.network.gateway], undefined, 10000);
  // The first block names the server (its own "Address:" line); the answers follow.
  const answers = r.stdout.slice(r.stdout.indexOf('\n\n') + 2);
  return [...answers.matchAll(/^Address:\s*(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1] as string);
}

async function resolved(net: VmNet, vm: Vm, name: string): Promise<string[]> {
  await waitFor(`${name} to resolve`, () => addresses(net, vm, name).length > 0);
  return addresses(net, vm, name);
}

function linesNaming(file: string, name: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.toLowerCase().split(/[ ,]/).includes(name));
}

describe('host names in DNS', skipUnlessNetns([DNSMASQ, 'busybox', 'curl']), () => {
  after(() => cleanupNetns());

  test('a second domain with the same DNS-safe name is refused, and the name resolves to the first VM only', async () => {
    const net = await VmNet.start();
    try {
      await startDnsmasq(net);
      const victim = await net.addVm(VICTIM);
      const r = net.upload(COPYCAT);
      assert.equal(r.status, 409, r.body);
      assert.equal(
        r.body,
        `host name victim of domain victim_ (${COPYCAT.uuid}) is already the host name of domain VICTIM (${VICTIM.uuid}): ` +
          'DNS names ignore case, and characters other than letters, digits and "-" become "-"',
      );
      assert.match(net.serverLog(), /WARN\]: host name victim of domain victim_ .* code="CONFLICT"/);
      const asker = await net.addVm(ASKER);
      assert.deepEqual(await resolved(net, asker, 'victim'), [victim.ipv4]);
      assert.deepEqual(await resolved(net, asker, 'VICTIM'), [victim.ipv4]);
      assert.equal(linesNaming(path.join(net.dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts'), 'victim').length, 1);
      assert.equal(linesNaming(path.join(net.dir, 'dnsmasq', 'dns', 'mds.dns-hosts'), 'victim').length, 1);
    } finally {
      await net.stop();
    }
  });

  test('a database that already holds both keeps serving them, and DNS gives the name to the first seen', async () => {
    // md_server had no such rule: its database is where such pairs come from.
    const mdServerDb = [
      { domain_name: COPYCAT.name, domain_uuid: COPYCAT.uuid, mds_mac: COPYCAT.mac, mds_ipv4: '10.199.0.22', first_seen: 1700000200 },
      { domain_name: VICTIM.name, domain_uuid: VICTIM.uuid, mds_mac: VICTIM.mac, mds_ipv4: '10.199.0.11', first_seen: 1700000100 },
    ];
    const net = await VmNet.start({ sections: { mdserver: { db_file: 'db_file.json' } }, files: { 'db_file.json': JSON.stringify(mdServerDb) } });
    try {
      await startDnsmasq(net);
      const asker = await net.addVm(ASKER);
      assert.deepEqual(await resolved(net, asker, 'victim'), ['10.199.0.11']);
      assert.deepEqual(await resolved(net, asker, 'victim-c0c0c0c0'), ['10.199.0.22']);
      assert.match(
        net.serverLog(),
        /instances share a host name: the first seen keeps it in DNS; rename or delete the others hostName="VICTIM" kept="VICTIM \(d0d0d0d0-\S+\)" listedAs="victim_ \(c0c0c0c0-\S+\) as victim-c0c0c0c0"/,
      );
      // The admin sees it too, without reading the log.
      const status = await cli(['status', '--json', '--socket', path.join(net.dir, 'run', 'admin.sock')]);
      const warnings = (JSON.parse(status.stdout) as { warnings: string[] }).warnings;
      assert.ok(warnings.includes('instances share the host name VICTIM: VICTIM keeps it in DNS; victim_ is listed as victim-c0c0c0c0 (rename or delete them)'), warnings.join('\n'));
      // Both keep their records: the hook's next upload of each is accepted as it was.
      assert.equal(net.upload(VICTIM).status, 200);
      assert.equal(net.upload(COPYCAT).status, 200);
    } finally {
      await net.stop();
    }
  });
});
