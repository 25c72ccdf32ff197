// Per-client token buckets: a VM that floods the metadata service gets 429s while every other
// VM keeps its normal latency. State is one small record per recently seen address, swept so
// that a flood of spoofed sources cannot grow memory without bound.

export interface RateLimitSettings {
  /** Sustained requests per second per client; 0 disables limiting. */
  rate: number;
  /** Requests a client may make at once before the rate applies. */
  burst: number;
}

interface Bucket {
  tokens: number;
  last: number;
  /** Set while the client is being refused, so that only the start of a flood is logged. */
  limited: boolean;
}

const MAX_CLIENTS = 100_000;

export class RateLimiter {
  private buckets = new Map<string, Bucket>();

  constructor(private settings: RateLimitSettings, private readonly now: () => number = () => performance.now()) {}

  setSettings(s: RateLimitSettings): void {
    this.settings = s;
    this.buckets = new Map();
  }

  get enabled(): boolean {
    return this.settings.rate > 0;
  }

  /** True when the last refusal by `take` was the first of a run for that client. */
  newlyLimited = false;

  /** Takes a token for `client`; returns 0 when allowed, else the seconds until one is free. */
  take(client: string): number {
    this.newlyLimited = false;
    const { rate, burst } = this.settings;
    if (rate <= 0) return 0;
    const t = this.now();
    let b = this.buckets.get(client);
    if (!b) {
      if (this.buckets.size >= MAX_CLIENTS) this.sweep(t);
      b = { tokens: burst, last: t, limited: false };
      this.buckets.set(client, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((t - b.last) / 1000) * rate);
      b.last = t;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      b.limited = false;
      return 0;
    }
    this.newlyLimited = !b.limited;
    b.limited = true;
    return Math.max(1, Math.ceil((1 - b.tokens) / rate));
  }

  /** Drops buckets that have refilled completely (they hold no information). */
  private sweep(t: number): void {
    const { rate, burst } = this.settings;
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((t - b.last) / 1000) * rate >= burst) this.buckets.delete(k);
    }
    if (this.buckets.size >= MAX_CLIENTS) this.buckets = new Map();
  }
}
