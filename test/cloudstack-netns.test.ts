// A CloudStack image's cloud-init finds mdserver on a plain host, by each of its datasource's
// three ways, and fetches its password through the password server: cloud-init 22.4's own
// DataSourceCloudStack (and its wget-based password client) in a VM namespace whose address came
// from a real dhclient talking to the dnsmasq that mdserver's files configure.
//
//   host namespace: br-mds (10.98.0.1/24 and 169.254.169.254/32); mdserver (`[cloudstack]
//                   enabled`, verify_mac) on 169.254.169.254:80 and 10.98.0.1:80, its password
//                   server on :8080 of both; dnsmasq started as mdserver-dnsmasq.service starts it
//   VM namespaces:  eth0 with the domain's MAC; dhclient; cloud-init in a mount namespace whose
//                   /etc/resolv.conf and DHCP lease directories each run chooses

import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { PY_DIR, PYTHON, skipUnless } from './cloudinit.js';
import { domainXml, tempDir, VM1, VM2, writeConfig } from './helpers.js';
import { bridge, cleanupNetns, Netns, skipUnlessNetns, veth, waitFor } from './netns.js';
import { cli, MDSERVER, run } from './process.js';
import { readUnit, startUnit } from './unit.js';

const DNSMASQ = '/usr/sbin/dnsmasq';
const MDS = '169.254.169.254';
const GATEWAY = '10.98.0.1';
/** Where cloud-init 22.4 looks for dhclient's leases (systemd-networkd's are always empty here). */
const LEASE_DIRS = ['/var/lib/dhclient', '/var/lib/dhcp', '/var/lib/NetworkManager'];
const NETWORKD_LEASES = '/run/systemd/netif/leases';

// What dhclient-script does, reduced to this test's needs: the address and the default route.
const DHCLIENT_SCRIPT = `#!/bin/sh
case "$reason" in
  PREINIT) ip link set "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    ip -4 addr flush dev "$interface"
    ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    set -- $new_routers
    ip route replace default via "$1" dev "$interface"
    ;;
esac
exit 0
`;

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

test('cloud-init 22.4\'s CloudStack datasource finds mdserver by data-server, by its DHCP lease and by its gateway, and gets its password once',
  needs.skip ? needs : skipUnless({ cloudInit: true }), async () => {
    const dir = tempDir('mdserver-csnet-');
    const host = Netns.create('mdsch');
    const vms: Netns[] = [];
    let mdserver: ChildProcess | null = null;
    let out = '';
    const config = writeConfig(dir, {
      mdserver: { port: 80, listen_address: MDS, verify_mac: 'yes', logfile: path.join(dir, 'mdserver.log') },
      loglevels: { base: 'debug', stream: 'info', file: 'debug' },
      dnsmasq: { net_address: '10.98.0.0', net_prefix: 24, gateway: GATEWAY, interface: 'br-mds', user: 'root', use_dns: 'yes', lease_len: 600 },
      'instance-defaults': { availability_zone: 'zone-7a' },
      cloudstack: { enabled: 'yes' },
    });
    fs.writeFileSync(path.join(dir, 'userdata', 'test1.yaml'), '#cloud-config\nruncmd: [echo cloudstack-user-data]\n');
    const startMdserver = async (): Promise<void> => {
      mdserver = host.spawn(process.execPath, [MDSERVER, config]);
      mdserver.stdout?.on('data', (c: Buffer) => (out += c.toString()));
      mdserver.stderr?.on('data', (c: Buffer) => (out += c.toString()));
      await waitFor('mdserver on the gateway', () => host.try('curl', ['-sf', '--max-time', '2', `http://${GATEWAY}/service/name`]).status === 0, 30000);
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
      bridge(host, 'br-mds', [`${GATEWAY}/24`, `${MDS}/32`]);
      await startMdserver();
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
      fs.writeFileSync(path.join(dir, 'dhclient-script'), DHCLIENT_SCRIPT, { mode: 0o755 });
      fs.writeFileSync(path.join(dir, 'dhclient.conf'), 'request subnet-mask, routers, domain-name-servers;\n');
      const leaseFile = path.join(leases, 'dhclient.eth0.leases');
      const dhclient = vm.spawn('dhclient', ['-d', '-1', '-cf', path.join(dir, 'dhclient.conf'), '-lf', leaseFile,
        '-pf', path.join(dir, 'dhclient.pid'), '-sf', path.join(dir, 'dhclient-script'), 'eth0']);
      await waitFor('the dhclient lease', () => fs.existsSync(leaseFile) && fs.readFileSync(leaseFile, 'utf8').includes('dhcp-server-identifier'), 30000);
      dhclient.kill('SIGKILL');
      assert.match(fs.readFileSync(leaseFile, 'utf8'), new RegExp(`option dhcp-server-identifier ${GATEWAY.replace(/\./g, '\\.')};`));

      /** cloud-init in the VM, with `resolv` as its /etc/resolv.conf and `leaseDir` as every lease directory. */
      const cloudInit = (resolv: string, leaseDir: string): CsResult => {
        const resolvFile = path.join(dir, `resolv-${Math.random().toString(36).slice(2)}`);
        fs.writeFileSync(resolvFile, resolv);
        const work = fs.mkdtempSync(path.join(dir, 'ci-'));
        const binds = LEASE_DIRS.map((d) => `if [ -d ${d} ]; then mount --bind "$2" ${d}; fi`).join('\n');
        const networkd = `if [ -d ${NETWORKD_LEASES} ]; then mount --bind "$3" ${NETWORKD_LEASES}; fi`;
        const sh = `set -e\nmount --bind "$1" /etc/resolv.conf\n${binds}\n${networkd}\nexec ${PYTHON} ${path.join(PY_DIR, 'cloudstack_datasource.py')}`;
        const r = vm.try('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', sh, 'sh', resolvFile, leaseDir, empty], JSON.stringify({ work }), 180000);
        if (r.status !== 0) throw new Error(`cloud-init failed (${r.status}):\n${r.stderr.slice(-6000)}\n${out}`);
        return { ...(JSON.parse(r.stdout) as CsResult), log: r.stderr };
      };
      const expectServed = (r: CsResult, via: string, why: RegExp): void => {
        assert.equal(r.get_data, true, r.log.slice(-4000));
        assert.equal(r.vr_addr, via);
        assert.match(r.log, why);
        assert.match(r.cloud_init_version, /^22\.4/);
        assert.match(r.instance_id ?? '', /^i-10\.98\.0\.\d+$/);
        assert.equal(r.hostname, 'test1');
        assert.deepEqual(r.public_keys, ['ssh-ed25519 AAAAdefaultkey user@host', 'ssh-rsa AAAAsecondkey other@host']);
        assert.equal(r.availability_zone, 'zone-7a');
        assert.match(r.userdata_raw ?? '', /cloudstack-user-data/);
      };

      // (a) data-server, through the dnsmasq the lease names as DNS server.
      const setPw = await run(process.execPath, [MDSERVER, 'instances', 'password', 'test1', ...socket], { input: 'Pa55-cs-one\n' });
      assert.equal(setPw.status, 0, setPw.stderr);
      const a = cloudInit(`nameserver ${GATEWAY}\n`, leases);
      expectServed(a, MDS, /Found metadata server '169\.254\.169\.254' via data-server DNS entry/);
      assert.equal(a.config?.password, 'Pa55-cs-one');
      assert.equal(a.config?.ssh_pwauth, true);
      assert.equal(a.config?.chpasswd?.expire, false);
      assert.doesNotMatch(out + fs.readFileSync(path.join(dir, 'mdserver.log'), 'utf8'), /Pa55-cs-one/, 'the password is never logged');
      // cloud-init acknowledged it: it is gone.
      assert.equal(vm.run('curl', ['-sS', '-H', 'DomU_Request: send_my_password', `http://${GATEWAY}:8080/`]), 'saved_password');

      // (b) no DNS: the dhcp-server-identifier of dhclient's lease; and the password set before a
      // restart of mdserver is still there after it.
      await run(process.execPath, [MDSERVER, 'instances', 'password', 'test1', ...socket], { input: 'Pa55-cs-two' });
      await stopMdserver();
      await startMdserver();
      const b = cloudInit('', leases);
      expectServed(b, GATEWAY, /Found DHCP identifier 10\.98\.0\.1/);
      assert.equal(b.config?.password, 'Pa55-cs-two');

      // (c) neither: the default gateway. Nothing is pending now, so there is no password.
      const c = cloudInit('', empty);
      expectServed(c, GATEWAY, /No lease file found, using default gateway/);
      assert.equal(c.config?.password, undefined);

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
