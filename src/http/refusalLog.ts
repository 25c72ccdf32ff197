// How often a client's refusals reach the log: the first in a window (a minute) is written as it
// happens, the rest are only counted, and the count goes into the client's next line. A VM that
// is refused thousands of times a second writes one line a minute, not gigabytes a day.
//
// Memory is bounded: at most `maxClients` clients are tracked, a client is forgotten after a quiet
// window, and refusals from clients beyond the bound (a flood of spoofed sources) are summed into
// one count, reported once a window.

import type { Logger } from '../log.js';

export interface RefusalLogOptions {
  /** The window, in ms: at most one line per client per window. */
  readonly windowMs: number;
  /** The most clients tracked at once. */
  readonly maxClients: number;
  /** The clock, in ms (tests step it by hand). */
  readonly now: () => number;
}

const DEFAULTS: RefusalLogOptions = { windowMs: 60_000, maxClients: 10_000, now: () => Date.now() };

interface Entry {
  /** When the line that opened this window was written. */
  since: number;
  /** Refusals since then that were not written. */
  suppressed: number;
}

export class RefusalLog {
  private readonly o: RefusalLogOptions;
  private readonly clients = new Map<string, Entry>();
  /** Refusals from clients that found the table full. */
  private overflow = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly log: Logger, options: Partial<RefusalLogOptions> = {}) {
    this.o = { ...DEFAULTS, ...options };
  }

  /**
   * Counts a refusal of `client`. Returns null when it is not to be written, else how many of
   * the client's refusals were left out since its last line (0 for the first), for that line.
   */
  admit(client: string): number | null {
    const t = this.o.now();
    const e = this.clients.get(client);
    if (e === undefined) {
      this.arm();
      if (this.clients.size >= this.o.maxClients) {
        this.overflow++;
        return null;
      }
      this.clients.set(client, { since: t, suppressed: 0 });
      return 0;
    }
    if (t - e.since < this.o.windowMs) {
      e.suppressed++;
      return null;
    }
    const left = e.suppressed;
    e.since = t;
    e.suppressed = 0;
    return left;
  }

  /** How many clients are tracked now. */
  get size(): number {
    return this.clients.size;
  }

  /**
   * Writes the count of each client whose window has ended with refusals left out (which opens a
   * new window for it), and forgets clients whose window ended quietly. Runs once a window while
   * anything is tracked; tests call it directly.
   */
  sweep(): void {
    const t = this.o.now();
    for (const [client, e] of this.clients) {
      if (t - e.since < this.o.windowMs) continue;
      if (e.suppressed === 0) {
        this.clients.delete(client);
        continue;
      }
      this.log.warn('more refusals of this client were not logged', { client, suppressed: e.suppressed, seconds: this.o.windowMs / 1000 });
      e.since = t;
      e.suppressed = 0;
    }
    if (this.overflow > 0) {
      this.log.warn('refusals of more clients than are tracked were not logged', { suppressed: this.overflow, tracked: this.clients.size });
      this.overflow = 0;
    }
    if (this.clients.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** The sweep runs only while there is something to report or forget, and never keeps the process alive. */
  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), this.o.windowMs);
    this.timer.unref();
  }

  /** Stops the sweep (the server is closing). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
