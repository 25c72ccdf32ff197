// A set of listening servers where only some addresses are required. A required one that cannot
// be bound fails the start, as before; an optional one (an IPv6 address not configured on the
// bridge yet, a link-local address still in duplicate address detection, a port another program
// holds) is logged, retried with a growing delay, and reported until it is bound. Nothing that
// happens to an optional listener stops the others.

import type net from 'node:net';
import { describe } from '../errors.js';
import { moduleLogger } from '../log.js';

const log = moduleLogger('listeners');

export interface ListenerSpec {
  /** What the listener is for, in logs and status ("metadata IPv6"). */
  readonly label: string;
  /** The address to bind; a link-local IPv6 address carries its interface (`fe80::1%br-mds`). */
  readonly address: string;
  readonly port: number;
  /** A required listener that cannot be bound fails `add`; an optional one is retried. */
  readonly required?: boolean;
}

export interface ListenerState {
  readonly label: string;
  readonly address: string;
  /** The port bound (port 0 in the spec: the one the system chose), or the one asked for while not bound. */
  readonly port: number;
  readonly bound: boolean;
  /** Why the last attempt failed, while not bound. */
  readonly error: string | null;
  /** Attempts made so far. */
  readonly attempts: number;
}

interface Entry {
  spec: ListenerSpec;
  server: net.Server;
  state: ListenerState;
  timer: NodeJS.Timeout | null;
}

export interface RetryPolicy {
  /** The first delay after a failure; each further one doubles, up to `maxMs`. */
  readonly firstMs: number;
  readonly maxMs: number;
}

const DEFAULT_RETRY: RetryPolicy = { firstMs: 1000, maxMs: 10000 };

/** Binds `server`; resolves with the port bound. */
function bind(server: net.Server, spec: ListenerSpec): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once('error', onError);
    server.listen(spec.port, spec.address, () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

export class ListenerSet {
  private readonly entries: Entry[] = [];
  private closed = false;

  constructor(private readonly retry: RetryPolicy = DEFAULT_RETRY) {}

  /**
   * Binds `server` to the spec's address. A required listener's failure rejects; an optional one
   * resolves after the first attempt whatever it gave, and keeps retrying in the background.
   */
  async add(server: net.Server, spec: ListenerSpec): Promise<void> {
    const entry: Entry = {
      spec, server, timer: null,
      state: { label: spec.label, address: spec.address, port: spec.port, bound: false, error: null, attempts: 0 },
    };
    if (spec.required) {
      const port = await bind(server, spec);
      entry.state = { ...entry.state, port, bound: true, attempts: 1 };
      this.entries.push(entry);
      return;
    }
    this.entries.push(entry);
    await this.attempt(entry, this.retry.firstMs);
  }

  private async attempt(entry: Entry, delay: number): Promise<void> {
    entry.timer = null;
    if (this.closed) return;
    const attempts = entry.state.attempts + 1;
    try {
      const port = await bind(entry.server, entry.spec);
      entry.state = { ...entry.state, port, bound: true, error: null, attempts };
      if (attempts > 1) log.info('listening now', { listener: entry.spec.label, address: entry.spec.address, port, attempts });
      else log.info('listening', { listener: entry.spec.label, address: entry.spec.address, port });
    } catch (e) {
      const error = describe(e);
      // Logged when the reason changes, not at every retry: an address that stays missing for
      // hours must not fill the log.
      if (error !== entry.state.error) {
        log.warn('cannot listen yet; retrying, the other listeners are not affected', {
          listener: entry.spec.label, address: entry.spec.address, port: entry.spec.port, error,
        });
      }
      entry.state = { ...entry.state, bound: false, error, attempts };
      if (this.closed) return;
      entry.timer = setTimeout(() => void this.attempt(entry, Math.min(delay * 2, this.retry.maxMs)), delay);
      entry.timer.unref();
    }
  }

  states(): ListenerState[] {
    return this.entries.map((e) => e.state);
  }

  /** One line per listener that is not bound, for status and /health. */
  problems(): string[] {
    return this.entries.filter((e) => !e.state.bound).map((e) =>
      `${e.spec.label} listener ${e.spec.address} port ${e.spec.port} is not bound (retrying): ${e.state.error ?? 'not tried yet'}`);
  }

  /** The servers that are listening, for closing. */
  servers(): net.Server[] {
    return this.entries.filter((e) => e.state.bound).map((e) => e.server);
  }

  /** Stops the retries; the caller closes the servers (see `servers`). */
  stopRetrying(): void {
    this.closed = true;
    for (const e of this.entries) if (e.timer) clearTimeout(e.timer);
  }
}
