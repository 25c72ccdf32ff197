// A CloudStack image's cloud-init finds mdserver on a plain host, by each of its datasource's
// three ways, and fetches its password through the password server: the DataSourceCloudStack
// (and its wget-based password client) of cloud-init 22.4 (Debian 12) and 25.1 (Debian 13), run
// as they are, in a VM namespace whose addresses came from real dhclients (DHCPv4 and DHCPv6)
// talking to the dnsmasq that mdserver's files configure.
//
//   host namespace: br-mds (10.98.0.1/24, 169.254.169.254/32, fd00:ec2::1/64, fd00:ec2::254);
//                   mdserver (`[cloudstack] enabled`, ipv6, verify_mac) on 169.254.169.254:80,
//                   10.98.0.1:80 and [fd00:ec2::254]:80, its password server on :8080 of the
//                   first two; dnsmasq started as mdserver-dnsmasq.service starts it
//   VM namespaces:  eth0 with the domain's MAC; dhclient -4 and -6 (dual stack, as a Debian 13
//                   guest comes up: cloud-init 25.1's fallback network asks DHCPv6 too);
//                   cloud-init in a mount namespace whose /etc/resolv.conf and DHCP lease
//                   directories each run chooses
//
// Dual stack is what broke Debian 13 guests: the datasource takes the first address
// getaddrinfo("data-server") returns and writes it into a URL without brackets, and a resolver
// with an IPv6 source address puts an AAAA answer first. data-server therefore resolves to the
// IPv4 metadata address only.

import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { PY_DIR, PYTHON, skipUnless } from './cloudinit.js';
import { domainXml, tempDir, VM1, VM2, writeConfig } from './helpers.js';
import { bridge, cleanupNetns, Netns, skipUnlessNetns, veth, waitFor, writeDhclientScript } from './netns.js';
import { cli, MDSERVER, run } from './process.js';
import { trixieCloudInit } from './trixie.js';
import { readUnit, startUnit } from './unit.js';

const DNSMASQ = '/usr/sbin/dnsmasq';
const MDS = '169.254.169.254';
const GATEWAY = '10.98.0.1';
const MDS6 = 'fd00:ec2::254';
const GW6 = 'fd00:ec2::1';
/** Where cloud-init 22.4 looks for dhclient's leases (systemd-networkd's are always empty here). */
const LEASE_DIRS = ['/var/lib/dhclient', '/var/lib/dhcp', '/var/lib/NetworkManager'];
const NETWORKD_LEASES = '/run/systemd/netif/leases';
/** cloud-init 25.1's last resort before the gateway: the lease of its own ephemeral dhclient. */
const EPHEMERAL_LEASE = '/run/dhclient.lease';

interface CsResult {
  cloud_init_version: string;
  vr_addr: string;
  get_data: boolean;
  instance_id?: string;
  hostname?: string;
  public_keys?: string[];
  availability_zone?: string;
  userdata_raw?: string;
  config?: { password?: string; ssh_pwauth?: boolean; chpasswd?: { expire?: boolean } };
  log: string;
}

const needs = skipUnlessNetns([DNSMASQ, 'dhclient', 'wget', 'curl', 'unshare', 'setpriv']);

test('cloud-init 22.4\'s and 25.1\'s CloudStack datasource find mdserver by data-server, by their DHCP lease and by their gateway on a dual-stack network, and get the password once',
  needs.skip ? needs : skipUnless({ cloudInit: true }), async () => {
    const dir = tempDir('mdserver-csnet-');
    const host = Netns.create('mdsch');
    const vms: Netns[] = [];
    let mdserver: ChildProcess | null = null;
    let out = '';
    const config = writeConfig(dir, {
      mdserver: { port: 80, listen_address: MDS, ipv6: 'yes', verify_mac: 'yes', logfile: path.join(dir, 'mdserver.log') },
      loglevels: { base: 'debug', stream: 'info', file: 'debug' },
      dnsmasq: { net_address: '10.98.0.0', net_prefix: 24, gateway: GATEWAY, interface: 'br-mds', user: 'root', use_dns: 'yes', lease_len: 600 },
      'instance-defaults': { availability_zone: 'zone-7a' },
      cloudstack: { enabled: 'yes' },
    });
    fs.writeFileSync(path.join(dir, 'userdata', 'test1.yaml'), '#cloud-config\nruncmd: [echo cloudstack-user-data]\n');
    const startMdserver = async (via = GATEWAY): Promise<void> => {
      mdserver = host.spawn(process.execPath, [MDSERVER, config]);
      mdserver.stdout?.on('data', (c: Buffer) => (out += c.toString()));
      mdserver.stderr?.on('data', (c: Buffer) => (out += c.toString()));
      await waitFor('mdserver on the gateway', () => host.try('curl', ['-sf', '--max-time', '2', `http://${via}/service/name`]).status === 0, 30000);
    };
    const stopMdserver = async (): Promise<void> => {
      const m = mdserver;
      if (!m || m.exitCode !== null) return;
      const gone = new Promise((r) => m.once('exit', r));
      m.kill('SIGTERM');
      await gone;
    };
    const socket = ['--socket', path.join(dir, 'run', 'admin.sock')];
    try {
      bridge(host, 'br-mds', [`${MDS}/32`, `${GW6}/64`, `${MDS6}/128`]);
      // mdserver starts before the gateway address is on the bridge: it serves the metadata
      // address, and says that the gateway's CloudStack listeners wait; they bind once it appears.
      await startMdserver(MDS);
      const waiting = await cli(['status', ...socket]);
      assert.equal(waiting.status, 1, waiting.stdout);
      assert.match(waiting.stdout, /^cloudstack metadata:\s+10\.98\.0\.1:80 NOT BOUND \(retrying\): .*EADDRNOTAVAIL/m);
      assert.match(waiting.stdout, /^cloudstack password:\s+10\.98\.0\.1:8080 NOT BOUND/m);
      host.ip('addr', 'add', `${GATEWAY}/24`, 'dev', 'br-mds');
      await waitFor('mdserver on the gateway', () => host.try('curl', ['-sf', '--max-time', '2', `http://${GATEWAY}/service/name`]).status === 0, 30000);
      assert.doesNotMatch((await cli(['status', ...socket])).stdout, /^cloudstack .*NOT BOUND/m);
      startUnit(host, readUnit('mdserver-dnsmasq.service'), {
        '/etc/mdserver/mdserver.conf': config, '/usr/local/bin/mdserver': MDSERVER, '/run/mdserver-dnsmasq': path.join(dir, 'run-dnsmasq'),
      }, ['--log-facility=-']);
      await waitFor('dnsmasq', () => fs.existsSync(path.join(dir, 'run-dnsmasq', 'mds.pid')));
      for (const spec of [VM1, VM2]) {
        const r = host.try('curl', ['-sS', '--data-binary', '@-', `http://${MDS}/instance-upload`], domainXml(spec));
        assert.match(r.stdout, /registered/, r.stdout + r.stderr);
      }

      // VM1 gets its address from dnsmasq with a real dhclient, which writes a real lease file.
      const vm = Netns.create('mdscv');
      vms.push(vm);
      host.ip('link', 'set', veth(host, vm, VM1.mac), 'master', 'br-mds');
      const leases = path.join(dir, 'leases');
      const empty = path.join(dir, 'empty');
      fs.mkdirSync(leases);
      fs.mkdirSync(empty);
      const emptyFile = path.join(dir, 'empty-lease');
      fs.writeFileSync(emptyFile, '');
      // The addresses (dhclient -4 and -6) and the default route, as a guest's dhclient-script sets them.
      const script = writeDhclientScript(path.join(dir, 'dhclient-script'), { defaultRoute: true, ipv6: true });
      fs.writeFileSync(path.join(dir, 'dhclient.conf'), 'request subnet-mask, routers, domain-name-servers;\n');
      const leaseFile = path.join(leases, 'dhclient.eth0.leases');
      const dhclient = vm.spawn('dhclient', ['-d', '-1', '-cf', path.join(dir, 'dhclient.conf'), '-lf', leaseFile,
        '-pf', path.join(dir, 'dhclient.pid'), '-sf', script, 'eth0']);
      await waitFor('the dhclient lease', () => fs.existsSync(leaseFile) && fs.readFileSync(leaseFile, 'utf8').includes('dhcp-server-identifier'), 30000);
      dhclient.kill('SIGKILL');
      assert.match(fs.readFileSync(leaseFile, 'utf8'), new RegExp(`option dhcp-server-identifier ${GATEWAY.replace(/\./g, '\\.')};`));
      // And its IPv6 address by DHCPv6 (the router advertisement says "managed"), as a Debian 13 guest does.
      await waitFor('a router advertisement', () => /^fd00:ec2::\/64 dev eth0/m.test(vm.ip('-6', 'route', 'show')), 20000);
      await waitFor('a usable link-local address', () => !/tentative/.test(vm.ip('-6', 'addr', 'show', 'eth0', 'scope', 'link')), 10000);
      const v6 = vm.try('dhclient', ['-6', '-1', '-v', '-lf', path.join(dir, 'dhclient6.leases'), '-pf', path.join(dir, 'dhclient6.pid'),
        '-sf', script, 'eth0'], undefined, 30000);
      assert.equal(v6.status, 0, v6.stderr);
      vm.try('sh', ['-c', `kill $(cat ${path.join(dir, 'dhclient6.pid')}) 2>/dev/null; true`]);
      assert.match(vm.ip('-6', 'addr', 'show', 'eth0', 'scope', 'global'), /inet6 fd00:ec2::[0-9a-f:]+\/128/);

      /**
       * cloud-init in the VM, with `resolv` as its /etc/resolv.conf and `leaseDir` as every lease
       * directory; `lib` puts another cloud-init (25.1's) in front of Debian's.
       */
      const cloudInit = (resolv: string, leaseDir: string, lib?: string): CsResult => {
        const resolvFile = path.join(dir, `resolv-${Math.random().toString(36).slice(2)}`);
        fs.writeFileSync(resolvFile, resolv);
        const work = fs.mkdtempSync(path.join(dir, 'ci-'));
        const binds = LEASE_DIRS.map((d) => `if [ -d ${d} ]; then mount --bind "$2" ${d}; fi`).join('\n');
        const networkd = `if [ -d ${NETWORKD_LEASES} ]; then mount --bind "$3" ${NETWORKD_LEASES}; fi`;
        const ephemeral = `if [ -f ${EPHEMERAL_LEASE} ]; then mount --bind "$4" ${EPHEMERAL_LEASE}; fi`;
        const py = `${lib ? `env PYTHONPATH=${lib} ` : ''}${PYTHON} ${path.join(PY_DIR, 'cloudstack_datasource.py')}`;
        const sh = `set -e\nmount --bind "$1" /etc/resolv.conf\n${binds}\n${networkd}\n${ephemeral}\nexec ${py}`;
        const r = vm.try('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', sh, 'sh', resolvFile, leaseDir, empty, emptyFile], JSON.stringify({ work }), 180000);
        if (r.status !== 0) throw new Error(`cloud-init failed (${r.status}):\n${r.stderr.slice(-6000)}\n${out}`);
        return { ...(JSON.parse(r.stdout) as CsResult), log: r.stderr };
      };
      /** The addresses the VM's resolver answers for `name` through the lease's name server. */
      const resolve = (name: string): string[] => {
        const file = path.join(dir, 'resolv-lookup');
        fs.writeFileSync(file, `nameserver ${GATEWAY}\n`);
        const r = vm.try('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" /etc/resolv.conf && exec getent ahosts "$2"', 'sh', file, name]);
        return [...new Set(r.stdout.split('\n').map((l) => l.split(/\s+/)[0] ?? '').filter(Boolean))];
      };
      const expectServed = (r: CsResult, version: RegExp, via: string, why: RegExp): void => {
        assert.equal(r.get_data, true, r.log.slice(-4000));
        assert.equal(r.vr_addr, via);
        assert.match(r.log, why);
        assert.match(r.cloud_init_version, version);
        assert.match(r.instance_id ?? '', /^i-10\.98\.0\.\d+$/);
        assert.equal(r.hostname, 'test1');
        assert.deepEqual(r.public_keys, ['ssh-ed25519 AAAAdefaultkey user@host', 'ssh-rsa AAAAsecondkey other@host']);
        assert.equal(r.availability_zone, 'zone-7a');
        assert.match(r.userdata_raw ?? '', /cloudstack-user-data/);
      };
      const setPassword = async (pw: string): Promise<void> => {
        const r = await run(process.execPath, [MDSERVER, 'instances', 'password', 'test1', ...socket], { input: `${pw}\n` });
        assert.equal(r.status, 0, r.stderr);
      };
      const pending = (): string => vm.run('curl', ['-sS', '-H', 'DomU_Request: send_my_password', `http://${GATEWAY}:8080/`]);

      // On this dual-stack network `metadata` has both addresses, but data-server only the IPv4
      // one: the datasource uses the first answer, and an IPv6 one first is a URL it cannot use.
      assert.deepEqual(resolve('metadata').sort(), [MDS, MDS6].sort());
      assert.deepEqual(resolve('data-server'), [MDS]);

      // (a) data-server, through the dnsmasq the lease names as DNS server.
      await setPassword('Pa55-cs-one');
      const a = cloudInit(`nameserver ${GATEWAY}\n`, leases);
      expectServed(a, /^22\.4/, MDS, /Found metadata server '169\.254\.169\.254' via data-server DNS entry/);
      assert.equal(a.config?.password, 'Pa55-cs-one');
      assert.equal(a.config?.ssh_pwauth, true);
      assert.equal(a.config?.chpasswd?.expire, false);
      assert.doesNotMatch(out + fs.readFileSync(path.join(dir, 'mdserver.log'), 'utf8'), /Pa55-cs-one/, 'the password is never logged');
      // cloud-init acknowledged it: it is gone.
      assert.equal(pending(), 'saved_password');

      // (b) no DNS: the dhcp-server-identifier of dhclient's lease; and the password set before a
      // restart of mdserver is still there after it.
      await setPassword('Pa55-cs-two');
      await stopMdserver();
      await startMdserver();
      const b = cloudInit('', leases);
      expectServed(b, /^22\.4/, GATEWAY, /Found DHCP identifier 10\.98\.0\.1/);
      assert.equal(b.config?.password, 'Pa55-cs-two');

      // (c) neither: the default gateway. Nothing is pending now, so there is no password.
      const c = cloudInit('', empty);
      expectServed(c, /^22\.4/, GATEWAY, /No lease file found, using default gateway/);
      assert.equal(c.config?.password, undefined);

      // The same three ways with cloud-init 25.1, which reads its lease files differently (its
      // Debian lease file pattern, then its own ephemeral lease), and its password exchange.
      const trixie = trixieCloudInit();
      await setPassword('Pa55-cs-25');
      const a25 = cloudInit(`nameserver ${GATEWAY}\n`, leases, trixie);
      expectServed(a25, /^25\.1/, MDS, /Found metadata server '169\.254\.169\.254' via data-server DNS entry/);
      assert.equal(a25.config?.password, 'Pa55-cs-25');
      assert.equal(a25.config?.ssh_pwauth, true);
      assert.equal(pending(), 'saved_password');
      expectServed(cloudInit('', leases, trixie), /^25\.1/, GATEWAY, /Found SERVER_ADDRESS '10\.98\.0\.1' via dhclient/);
      expectServed(cloudInit('', empty, trixie), /^25\.1/, GATEWAY, /No DHCP found, using default gateway/);
      // Another VM never gets VM1's password, even with VM1's address (verify_mac).
      await run(process.execPath, [MDSERVER, 'instances', 'password', 'test1', ...socket], { input: 'Pa55-cs-three' });
      const other = Netns.create('mdscv');
      vms.push(other);
      host.ip('link', 'set', veth(host, other, VM2.mac), 'master', 'br-mds');
      const ip1 = /inet (10\.98\.0\.\d+)/.exec(vm.ip('-4', 'addr', 'show', 'eth0'))?.[1] as string;
      vm.ip('link', 'set', 'eth0', 'down');
      other.ip('addr', 'add', `${ip1}/24`, 'dev', 'eth0');
      await waitFor('the thief to be refused', () => {
        const r = other.try('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', '-H', 'DomU_Request: send_my_password', `http://${GATEWAY}:8080/`]);
        return r.stdout === '403';
      }, 10000);
      const stolen = other.try('curl', ['-sS', '--max-time', '3', '-H', 'DomU_Request: send_my_password', `http://${GATEWAY}:8080/`]);
      assert.doesNotMatch(stolen.stdout, /Pa55/);
      other.try('curl', ['-sS', '--max-time', '3', '-H', 'DomU_Request: saved_password', `http://${GATEWAY}:8080/`]);
      assert.match((await cli(['instances', 'show', 'test1', ...socket])).stdout, /^password:\s+pending$/m, "the thief's acknowledgement deleted nothing");
    } catch (e) {
      if (process.env['MDSERVER_TEST_LOGS']) process.stderr.write(`--- mdserver\n${out}\n`);
      throw e;
    } finally {
      await stopMdserver();
      for (const v of vms) v.delete();
      host.delete();
      // dnsmasq and dhclient too: every process this test started in a namespace.
      cleanupNetns();
    }
  });
