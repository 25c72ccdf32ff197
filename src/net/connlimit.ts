// Pure: the open connections of each client and of all clients together, against their caps. A
// VM that opens socket after socket and never sends a request would otherwise hold every file
// descriptor the process has, and every other VM (and the host's uploads) would be refused.
// Only open connections have an entry, so the map never outgrows the total cap.

export interface ConnectionCaps {
  /** The most connections one client (one source address) may hold. */
  readonly perClient: number;
  /** The most connections all capped clients together may hold. */
  readonly total: number;
}

/** What `open` decided: counted, or refused because of the client's cap or the total one. */
export type Admission = 'ok' | 'client' | 'total';

export class ConnectionCounts {
  private readonly byClient = new Map<string, number>();
  private all = 0;

  /** Counts a new connection of `client` unless a cap is reached; each `ok` needs one `close`. */
  open(client: string, caps: ConnectionCaps): Admission {
    const n = this.byClient.get(client) ?? 0;
    if (n >= caps.perClient) return 'client';
    if (this.all >= caps.total) return 'total';
    this.byClient.set(client, n + 1);
    this.all++;
    return 'ok';
  }

  /** A counted connection of `client` has closed. */
  close(client: string): void {
    const n = this.byClient.get(client);
    if (n === undefined) return;
    if (n <= 1) this.byClient.delete(client);
    else this.byClient.set(client, n - 1);
    this.all--;
  }

  /** Open connections of `client`, or of all clients. */
  count(client?: string): number {
    return client === undefined ? this.all : (this.byClient.get(client) ?? 0);
  }

  /** Clients with at least one open connection. */
  get clients(): number {
    return this.byClient.size;
  }
}

/** File descriptors kept free of VM connections: the database, the logfile, templates, the host. */
export const FD_RESERVE = 128;

/**
 * The total cap in force: the configured one, or less when the open-file limit would run out
 * first (a connection is a descriptor), so that the host and the server's own files always find
 * one. `fdLimit` is null when unknown.
 */
export function effectiveTotal(configured: number, fdLimit: number | null): number {
  if (fdLimit === null) return configured;
  return Math.max(1, Math.min(configured, fdLimit - FD_RESERVE));
}

/** The soft open-file limit from the text of /proc/<pid>/limits; null when it says unlimited or nothing. */
export function parseOpenFileLimit(limits: string): number | null {
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits);
  return m?.[1] === undefined || m[1] === 'unlimited' ? null : Number(m[1]);
}
