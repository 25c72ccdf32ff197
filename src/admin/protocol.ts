// The admin API's answers as they travel over the socket: one declaration each, shared by the
// server side (src/admin/) that builds them and the command line (src/cli/) that prints them.

import { filterProblem, type FilterSettings } from '../metadata/isolation.js';
import type { Instance } from '../store/store.js';

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
  firstSeen: string;
  lastUpdate: string;
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

/** Pure: the JSON form of a stored instance, judged by the filter settings in force. */
export function instanceJson(i: Instance, filters: FilterSettings): InstanceJson {
  return {
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
    firstSeen: new Date(i.firstSeen).toISOString(),
    lastUpdate: new Date(i.lastUpdate).toISOString(),
  };
}
