// The listeners `[cloudstack] enabled` adds: the metadata app on port `[mdserver] port` of the
// `[dnsmasq] gateway` (a CloudStack guest finds its server as its DHCP server or default gateway),
// and the password server on `[cloudstack] password_port` of the metadata address and of the
// gateway. An address that is not configured yet (the bridge comes up after mdserver) is logged
// and tried again every few seconds; it never stops the main service.

import http from 'node:http';
import { describe } from './errors.js';
import { moduleLogger } from './log.js';

const log = moduleLogger('cloudstack');

export interface ListenerSpec {
  readonly role: 'metadata' | 'password';
  readonly address: string;
  readonly port: number;
  readonly server: http.Server;
}

export interface ListenerState {
  readonly role: 'metadata' | 'password';
  readonly address: string;
  /** The port bound, or the one asked for while not bound. */
  readonly port: number;
  readonly listening: boolean;
  /** Why the last attempt failed, while not listening. */
  readonly error: string | null;
}

interface Slot {
  spec: ListenerSpec;
  state: ListenerState;
  timer: NodeJS.Timeout | null;
}

export class RetryingListeners {
  private readonly slots: Slot[];
  private closed = false;

  constructor(specs: readonly ListenerSpec[], private readonly retryMs = 5000) {
    this.slots = specs.map((spec) => ({
      spec, timer: null, state: { role: spec.role, address: spec.address, port: spec.port, listening: false, error: null },
    }));
  }

  /** Makes the first attempt on every address; resolves when each has bound or failed once. */
  async start(): Promise<void> {
    await Promise.all(this.slots.map((s) => this.attempt(s)));
  }

  state(): ListenerState[] {
    return this.slots.map((s) => s.state);
  }

  private attempt(s: Slot): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) return resolve();
      const { server, address, port, role } = s.spec;
      const failed = (e: NodeJS.ErrnoException): void => {
        const first = s.state.error === null;
        s.state = { ...s.state, listening: false, error: e.code ?? describe(e) };
        // Once per address, then quietly: the bridge may take a while to come up.
        if (first) log.warn(`cannot listen on ${address}:${port} yet; trying again every ${this.retryMs / 1000} s`, { role, error: describe(e) });
        s.timer = setTimeout(() => void this.attempt(s), this.retryMs);
        s.timer.unref();
        resolve();
      };
      server.once('error', failed);
      server.listen(port, address, () => {
        server.off('error', failed);
        const a = server.address() as { port: number };
        s.state = { ...s.state, port: a.port, listening: true, error: null };
        log.info('listening', { role, address, port: a.port });
        resolve();
      });
    });
  }

  /** Stops retrying and closes every listener; connections still open are ended. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => new Promise<void>((resolve) => {
      if (s.timer) clearTimeout(s.timer);
      if (!s.spec.server.listening) return resolve();
      s.spec.server.close(() => resolve());
      s.spec.server.closeAllConnections();
    })));
  }
}
