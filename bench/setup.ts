// The benchmark's working directory: mdserver's configuration, a real user-data template and a
// dnsmasq pid file, all under one temporary directory.

import fs from 'node:fs';
import path from 'node:path';

/**
 * VMs live in 127.64.0.0/10: the whole of 127.0.0.0/8 is local on Linux, so every simulated VM can
 * send from its own address, and a /10 leaves the random allocator millions of free addresses.
 * The host (uploads) speaks from 127.0.0.1, outside that network.
 */
export const VM_NET = { address: '127.64.0.0', prefix: 10, gateway: '127.64.0.1' };

/** A cloud-config of the usual size and shape, using both eta tags and md_server's `{{...}}`. */
export const TEMPLATE = `#cloud-config
# The benchmark's user-data: eta tags and md_server (Bottle) placeholders side by side.
hostname: {{hostname}}
fqdn: {{hostname}}.{{domain}}
manage_etc_hosts: true
timezone: Etc/UTC
users:
  - default
  - name: ops
    groups: [sudo, adm]
    shell: /bin/bash
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    ssh_authorized_keys:
<% for (const key of Object.values(it.public_keys)) { %>      - <%= key %>
<% } %>ssh_authorized_keys:
  - {{public_key_default}}
apt:
  primary:
    - arches: [default]
      uri: {{mirror}}
package_update: true
packages: [qemu-guest-agent, chrony, curl]
write_files:
  - path: /etc/mdserver-instance
    permissions: "0644"
    content: |
      name=<%= it.name %>
      uuid=<%= it.uuid %>
      ipv4=<%= it.ipv4 %>
      mac=<%= it.mac %>
      zone=<%= it.availability_zone %>
      region=<%= it.region %>
      role=<%= it.metadata.role || 'none' %>
runcmd:
  - [systemctl, enable, --now, qemu-guest-agent]
  - [sh, -c, 'echo "booted <%= it.instance_id %> in {{region}}" > /dev/console']
final_message: "{{hostname}} up after $UPTIME seconds"
`;

export interface BenchDir {
  dir: string;
  configFile: string;
  /** Included by configFile: settings a run changes and then reloads. */
  localConf: string;
  dbFile: string;
  logFile: string;
  dhcpHosts: string;
  dnsHosts: string;
}

/**
 * Writes the configuration. Log levels: the server keeps md_server's default of `info` for its
 * log file, so every request's access line is written to the file as in production; only the
 * console stream is raised to `warning`, since under systemd that copy goes to the journal.
 */
export function writeBenchDir(dir: string, port: number, dnsmasqPid: number): BenchDir {
  fs.mkdirSync(path.join(dir, 'userdata'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'run'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'run-dnsmasq'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'userdata', 'bench.yaml'), TEMPLATE);
  // The server SIGHUPs "dnsmasq" after each host file rewrite: the benchmark runner stands in for
  // it and counts the signals. dnsmasq's pid file is in its own directory beside run_dir.
  fs.writeFileSync(path.join(dir, 'run-dnsmasq', 'mds.pid'), `${dnsmasqPid}\n`);
  const configFile = path.join(dir, 'mdserver.conf');
  const localConf = path.join(dir, 'bench.local.conf');
  fs.writeFileSync(
    configFile,
    `[mdserver]
port = ${port}
listen_address = 127.0.0.1
userdata_dir = userdata
default_template = userdata/bench.yaml
db_file = mdserver.db
logfile = mdserver.log
imds_tokens = optional

[loglevels]
base = info
stream = warning
file = info

[public-keys]
default = ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchmarkKeyBenchmarkKeyBenchmarkKey0000 bench@host
ops = ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQBenchmarkOpsKeyBenchmarkOpsKey0000000000 ops@host

[template-data]
mirror = http://deb.debian.org/debian

[dnsmasq]
base_dir = dnsmasq
run_dir = run
net_address = ${VM_NET.address}
net_prefix = ${VM_NET.prefix}
gateway = ${VM_NET.gateway}
interface = lo
domain = bench.internal

[instance-defaults]
availability_zone = bench-local-1a

[_include_]
files = ${localConf}
`,
  );
  // What a run changes by reloading (the metrics switch); empty to begin with.
  fs.writeFileSync(localConf, '');
  return {
    dir,
    configFile,
    localConf,
    dbFile: path.join(dir, 'mdserver.db'),
    logFile: path.join(dir, 'mdserver.log'),
    dhcpHosts: path.join(dir, 'dnsmasq', 'dhcp', 'mds.dhcp-hosts'),
    dnsHosts: path.join(dir, 'dnsmasq', 'dns', 'mds.dns-hosts'),
  };
}
