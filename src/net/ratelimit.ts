// Per-client token buckets: a VM that floods the metadata service gets 429s while every other
// VM keeps its normal latency. State is one small record per recently seen address, swept so
// that a flood of spoofed sources cannot grow memory without bound.

export interface RateLimitSettings {
  /** Sustained requests per second per client; 0 disables limiting. */
  readonly rateLimit: number;
  /** Requests a client may make at once before the rate applies. */
  readonly rateBurst: number;
}

/** What `take` decided: allowed, or refused with the seconds until a token is free. */
export type Verdict = { readonly allowed: true } | { readonly allowed: false; readonly retryAfter: number; readonly firstOfRun: boolean };

const ALLOWED: Verdict = Object.freeze({ allowed: true });

interface Bucket {
  tokens: number;
  last: number;
  /** Set while the client is being refused, so that only the start of a flood is logged. */
  limited: boolean;
}

const MAX_CLIENTS = 100_000;

export class RateLimiter {
  private buckets = new Map<string, Bucket>();
  private settingsSeen: RateLimitSettings | null = null;

  /**
   * @param settings read on every call, so a reloaded configuration applies at once; when it
   *   returns a different object the buckets start over.
   */
  constructor(private readonly settings: () => RateLimitSettings, private readonly now: () => number = () => performance.now()) {}

  get enabled(): boolean {
    return this.settings().rateLimit > 0;
  }

  /** Takes a token for `client`. `firstOfRun` marks the first refusal of a run (worth a log line). */
  take(client: string): Verdict {
    const s = this.settings();
    if (s !== this.settingsSeen) {
      this.settingsSeen = s;
      this.buckets = new Map();
    }
    const rate = s.rateLimit;
    const burst = s.rateBurst;
    if (rate <= 0) return ALLOWED;
    const t = this.now();
    let b = this.buckets.get(client);
    if (!b) {
      if (this.buckets.size >= MAX_CLIENTS) this.sweep(t, rate, burst);
      b = { tokens: burst, last: t, limited: false };
      this.buckets.set(client, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((t - b.last) / 1000) * rate);
      b.last = t;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      b.limited = false;
      return ALLOWED;
    }
    const firstOfRun = !b.limited;
    b.limited = true;
    return { allowed: false, retryAfter: Math.max(1, Math.ceil((1 - b.tokens) / rate)), firstOfRun };
  }

  /** Drops buckets that have refilled completely (they hold no information). */
  private sweep(t: number, rate: number, burst: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((t - b.last) / 1000) * rate >= burst) this.buckets.delete(k);
    }
    if (this.buckets.size >= MAX_CLIENTS) this.buckets = new Map();
  }
}
