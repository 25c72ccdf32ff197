// The admin API's answers as they travel over the socket: one declaration each, shared by the
// server side (src/admin/) that builds them and the command line (src/cli/) that prints them.

import { filterProblem, type FilterSettings } from '../metadata/isolation.js';
import { statusText, type ProvisioningStatus } from '../provisioning/status.js';
import type { BootEvent, Instance } from '../store/store.js';

/** Its provisioning status, with the STATUS column's text (`ready 41s`, `failed: <module>`…). */
export interface ProvisioningJson extends ProvisioningStatus {
  text: string;
}

/** One event of the current boot, as `mdserver instances show` lists them. */
export interface BootEventJson {
  at: string;
  kind: BootEvent['kind'];
  name: string;
  result: string | null;
  description: string;
}

/** An instance, as `mdserver instances show --json` prints it. */
export interface InstanceJson {
  name: string;
  hostName: string;
  uuid: string;
  mac: string;
  ipv4: string | null;
  ipv6: string | null;
  location: string;
  /** The host that last registered it ([store] host_name). */
  host: string;
  arch: string | null;
  /** The `<filterref filter>` of its metadata interface, or null. */
  nwfilter: string | null;
  /** Whether that filter is one of `trusted_filters` now (a reload may change it). */
  filtered: boolean;
  metadata: Readonly<Record<string, string>>;
  /** "pending" while a one-time password waits for the VM (`[cloudstack]`); never the password. */
  password: 'pending' | null;
  firstSeen: string;
  lastUpdate: string;
  /** The current boot's provisioning status (list, show). */
  provisioning?: ProvisioningJson;
  /** The current boot's events, oldest first (show). */
  events?: BootEventJson[];
}

/** A record moved to a new uuid, as `mdserver instances rekey --json` prints it. */
export interface RekeyJson {
  previousUuid: string;
  instance: InstanceJson;
}

/** The server's state, as `mdserver status --json` prints it. */
export interface StatusReport {
  healthy: boolean;
  problems: string[];
  version: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  configFiles: readonly string[];
  listen: { address: string; port: number };
  /** Every listener (metadata, CloudStack); an unbound one is retried and makes the server degraded. */
  listeners: { label: string; address: string; port: number; bound: boolean; error: string | null }[];
  /** The IPv6 prefix, gateway and listen address with `ipv6 = yes`; else null. */
  ipv6: { prefix: string; gateway: string; listenAddress: string } | null;
  instances: number;
  network: string;
  lastReload: { at: string; ok: boolean } | null;
  dnsmasq: {
    filesWritten: boolean;
    lastWrite: string | null;
    pid: number | null;
    running: boolean;
    files: { ok: boolean; lastError: string | null; lastWrite: string | null; lastHup: string | null; hupError: string | null };
  };
  logfile: { file: string | null; writable: boolean };
  /** The metadata port's open connections from VMs, and from how many addresses. */
  connections: { open: number; clients: number };
  /** What the admin should know that does not make the server unhealthy (unfiltered VMs, open uploads). */
  warnings: string[];
}

export function provisioningJson(s: ProvisioningStatus): ProvisioningJson {
  return { ...s, text: statusText(s) };
}

export function bootEventJson(e: BootEvent): BootEventJson {
  return { at: new Date(e.received).toISOString(), kind: e.kind, name: e.name, result: e.result, description: e.description };
}

/** Pure: the JSON form of a stored instance, judged by the filter settings in force. */
export function instanceJson(i: Instance, filters: FilterSettings, status?: ProvisioningStatus, passwordPending = false): InstanceJson {
  const json: InstanceJson = {
    name: i.name,
    hostName: i.hostName,
    uuid: i.uuid,
    mac: i.mac,
    ipv4: i.ipv4,
    ipv6: i.ipv6,
    location: i.location,
    host: i.host,
    arch: i.arch,
    nwfilter: i.nwfilter,
    filtered: filterProblem(i, filters) === null,
    metadata: i.metadata,
    password: passwordPending ? 'pending' : null,
    firstSeen: new Date(i.firstSeen).toISOString(),
    lastUpdate: new Date(i.lastUpdate).toISOString(),
  };
  if (status) json.provisioning = provisioningJson(status);
  return json;
}
