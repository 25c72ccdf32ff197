// The metadata listener's connection guard: every connection from a VM is counted against
// `[mdserver] max_connections_per_client` and `max_connections` as it is accepted, and closed at
// once when a cap is reached. The host is never counted: its uploads must get through whatever
// the VMs do. The cost is one map update when a connection opens and one when it closes.

import fs from 'node:fs';
import type http from 'node:http';
import type net from 'node:net';
import type { Config, ConfigSource } from '../config/index.js';
import type { Logger } from '../log.js';
import { ConnectionCounts, effectiveTotal, parseOpenFileLimit, type Admission, type ConnectionCaps } from '../net/connlimit.js';
import { normaliseRemote } from '../net/ip.js';
import { isHost } from './client.js';
import type { RefusalLog } from './refusalLog.js';

/** This process's soft open-file limit (Node raises it to the hard limit at start), or null. */
export function openFileLimit(): number | null {
  try {
    return parseOpenFileLimit(fs.readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}

export interface GuardOptions {
  readonly config: ConfigSource;
  readonly refusals: RefusalLog;
  readonly log: Logger;
  /** The open-file limit the total cap must stay below; null when unknown. */
  readonly fdLimit: number | null;
  /** Counts shared with another listener, so that a VM's connections to both count together. */
  readonly counts?: ConnectionCounts;
}

/**
 * Starts counting `server`'s connections; returns the counts (for status and tests). Listeners
 * that pass the same `counts` (as an argument or in `o.counts`) share the caps: a VM holds the
 * same allowance on all of them.
 */
export function guardConnections(server: http.Server, o: GuardOptions, shared?: ConnectionCounts): ConnectionCounts {
  const counts = shared ?? o.counts ?? new ConnectionCounts();
  const caps = capsFor(o);
  caps(o.config());
  server.on('connection', (socket: net.Socket) => {
    const cfg = o.config();
    const client = normaliseRemote(socket.remoteAddress);
    if (isHost(client, cfg)) return;
    const c = caps(cfg);
    const verdict = counts.open(client, c);
    if (verdict === 'ok') {
      socket.once('close', () => counts.close(client));
      return;
    }
    // Closed before a byte is read: the client sees its connection end (or reset) at once.
    socket.destroy();
    refused(o, client, verdict, c, counts);
  });
  return counts;
}

/** The caps of a configuration, worked out again only when a reload brings a new one. */
function capsFor(o: GuardOptions): (cfg: Config) => ConnectionCaps {
  let seen: Config | null = null;
  let caps: ConnectionCaps = { perClient: 1, total: 1 };
  return (cfg) => {
    if (cfg === seen) return caps;
    seen = cfg;
    const total = effectiveTotal(cfg.mdserver.maxConnections, o.fdLimit);
    if (total < cfg.mdserver.maxConnections) {
      o.log.warn('max_connections is more than the open-file limit leaves room for; using less', {
        configured: cfg.mdserver.maxConnections, limit: o.fdLimit, using: total,
      });
    }
    caps = { perClient: cfg.mdserver.maxConnectionsPerClient, total };
    return caps;
  };
}

function refused(o: GuardOptions, client: string, why: Exclude<Admission, 'ok'>, caps: ConnectionCaps, counts: ConnectionCounts): void {
  const left = o.refusals.admit(client);
  if (left === null) return;
  const fields: Record<string, unknown> = why === 'client'
    ? { client, open: counts.count(client), max_connections_per_client: caps.perClient }
    : { client, open: counts.count(), max_connections: caps.total };
  if (left > 0) fields['suppressed'] = left;
  o.log.warn(why === 'client' ? 'closed a connection: this client holds too many' : 'closed a connection: VMs hold too many', fields);
}
