// The process's metrics, in a private prom-client registry (tests run several servers in one
// process; the global registry would mix them). Built once by the composition root and handed
// to every part as `services.metrics`; each method is a plain function, safe to pass on alone.
// No label carries an instance, an address or a path: every value comes from classify.ts.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FORMATS, REFUSALS, STATUS_CLASSES, formatOf, statusClassIndex, type ProvisioningOutcome, type RefusalReason, type RequestFormat } from './classify.js';

/** What the metrics read when scraped, rather than being told of each change. */
export interface Gauges {
  /** Instances in the store. */
  instances(): number;
  /** The last time dnsmasq was signalled, ISO text, or null; whether its files are written. */
  dnsmasq(): { lastHup: string | null; ok: boolean };
}

const PREFIX = 'mdserver_';
/** Request latency: a metadata answer takes well under a millisecond; a user-data render a few. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Time from a VM's first metadata request to cloud-init's final stage: seconds to minutes. */
const READY_BUCKETS = [10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200];

export class Metrics {
  private readonly registry = new Registry();
  /**
   * Requests by format and status class, counted as plain numbers on the hot path and handed to
   * prom-client only when scraped: a labelled `inc` hashes its labels on every call.
   */
  private readonly requestCounts = new Float64Array(FORMATS.length * STATUS_CLASSES.length);
  /** Request latency, kept the same way: bucket counts (not cumulative), their sum and count. */
  private readonly latencyBuckets = new Float64Array(LATENCY_BUCKETS.length + 1);
  private latencySum = 0;
  private readonly refusals: Counter<'reason'>;
  private readonly uploads: Counter<'result'>;
  private readonly uploadFailures: Counter<'reason'>;
  private readonly dnsmasqEvents: Counter<'event'>;
  private readonly templateFailures: Counter;
  private readonly storeErrors: Counter<'operation'>;
  private readonly provisioning: Counter<'outcome'>;
  private readonly readySeconds: Histogram;

  readonly contentType = Registry.PROMETHEUS_CONTENT_TYPE;

  constructor(gauges: Gauges) {
    const registers = [this.registry];
    const counts = this.requestCounts;
    new Counter({
      name: `${PREFIX}requests_total`, help: 'HTTP requests answered on the metadata port, by format and status class',
      labelNames: ['format', 'status'], registers,
      collect(this: Counter<'format' | 'status'>) {
        this.reset();
        FORMATS.forEach((format, f) => STATUS_CLASSES.forEach((status, s) => {
          const n = counts[f * STATUS_CLASSES.length + s] as number;
          if (n > 0) this.inc({ format, status }, n);
        }));
      },
    });
    this.refusals = new Counter({ name: `${PREFIX}refusals_total`, help: 'Requests refused, by reason', labelNames: ['reason'], registers });
    for (const reason of REFUSALS) this.refusals.inc({ reason }, 0);
    this.uploads = new Counter({ name: `${PREFIX}uploads_total`, help: 'Domains registered by upload, by result', labelNames: ['result'], registers });
    for (const result of ['created', 'updated']) this.uploads.inc({ result }, 0);
    this.uploadFailures = new Counter({ name: `${PREFIX}upload_failures_total`, help: 'Uploads refused or failed, by error code', labelNames: ['reason'], registers });
    this.dnsmasqEvents = new Counter({
      name: `${PREFIX}dnsmasq_events_total`, help: 'dnsmasq host file rewrites, write failures and signal failures', labelNames: ['event'], registers,
    });
    for (const event of ['rewrite', 'write_failure', 'signal_failure']) this.dnsmasqEvents.inc({ event }, 0);
    this.templateFailures = new Counter({ name: `${PREFIX}template_failures_total`, help: 'User-data templates that failed to render', registers });
    this.storeErrors = new Counter({ name: `${PREFIX}store_errors_total`, help: 'Store operations that failed, by operation', labelNames: ['operation'], registers });
    this.provisioning = new Counter({
      name: `${PREFIX}provisioning_total`, help: 'VMs whose cloud-init reported the end of provisioning, by outcome', labelNames: ['outcome'], registers,
    });
    for (const outcome of ['ready', 'failed']) this.provisioning.inc({ outcome }, 0);
    this.readySeconds = new Histogram({
      name: `${PREFIX}provisioning_ready_seconds`, help: "Time from a VM's first metadata request to cloud-init's report that it is ready",
      buckets: READY_BUCKETS, registers,
    });
    this.gauges(gauges);
  }

  private gauges(g: Gauges): void {
    const registers = [this.registry];
    new Gauge({ name: `${PREFIX}instances`, help: 'Instances registered', registers, collect(this: Gauge) {
      // A store that cannot answer must not take the metrics down with it: its error is counted
      // (store_errors_total) and the last count stays.
      try {
        this.set(g.instances());
      } catch {
        /* counted by the store's wrapper */
      }
    } });
    new Gauge({ name: `${PREFIX}dnsmasq_files_ok`, help: '1 when the dnsmasq files were last written without error', registers, collect(this: Gauge) {
      this.set(g.dnsmasq().ok ? 1 : 0);
    } });
    new Gauge({
      name: `${PREFIX}dnsmasq_last_signal_timestamp_seconds`, help: 'When dnsmasq was last signalled to re-read its files (0: never)', registers,
      collect(this: Gauge) {
        const at = g.dnsmasq().lastHup;
        this.set(at === null ? 0 : Date.parse(at) / 1000);
      },
    });
  }

  /** One answered request: `path` as requested, the status written, the seconds it took. */
  readonly request = (path: string, ec2Versions: readonly string[], status: number, seconds: number): void => {
    const f = FORMATS.indexOf(formatOf(path, ec2Versions));
    (this.requestCounts[f * STATUS_CLASSES.length + statusClassIndex(status)] as number)++;
    let b = 0;
    while (b < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[b] as number)) b++;
    (this.latencyBuckets[b] as number)++;
    this.latencySum += seconds;
  };

  /** How many requests of `format` were answered with a status of `statusClass` (tests, status). */
  requestCount(format: RequestFormat, statusClass: (typeof STATUS_CLASSES)[number]): number {
    return this.requestCounts[FORMATS.indexOf(format) * STATUS_CLASSES.length + STATUS_CLASSES.indexOf(statusClass)] as number;
  }

  readonly refused = (reason: RefusalReason): void => this.refusals.inc({ reason });
  readonly uploaded = (created: boolean): void => this.uploads.inc({ result: created ? 'created' : 'updated' });
  /** `reason` is an error code (bounded: errors.ts lists them), lower case. */
  readonly uploadFailed = (reason: string): void => this.uploadFailures.inc({ reason: reason.toLowerCase() });
  readonly dnsmasqRewritten = (): void => this.dnsmasqEvents.inc({ event: 'rewrite' });
  readonly dnsmasqWriteFailed = (): void => this.dnsmasqEvents.inc({ event: 'write_failure' });
  readonly dnsmasqSignalFailed = (): void => this.dnsmasqEvents.inc({ event: 'signal_failure' });
  readonly templateFailed = (): void => this.templateFailures.inc();
  /** A failed store operation; `operation` is the Store method's name (any backend may call it). */
  readonly storeError = (operation: string): void => this.storeErrors.inc({ operation });

  /**
   * A VM finished provisioning: `ready` with the seconds from its first metadata request to
   * cloud-init's final stage (null when unknown), or `failed`. Call once per boot.
   */
  readonly provisioned = (outcome: ProvisioningOutcome, seconds: number | null = null): void => {
    this.provisioning.inc({ outcome });
    if (outcome === 'ready' && seconds !== null && Number.isFinite(seconds) && seconds >= 0) this.readySeconds.observe(seconds);
  };

  /** The Prometheus text exposition of every metric. */
  async text(): Promise<string> {
    return (await this.registry.metrics()) + this.latencyText();
  }

  /**
   * The latency histogram in the text format, written here from the plain counts: prom-client's
   * own histogram hashes its labels on every observation, a measurable part of a metadata request
   * (doc/benchmarks.md), and offers no way to hand it counts kept elsewhere.
   */
  private latencyText(): string {
    const name = `${PREFIX}request_duration_seconds`;
    const lines = [`# HELP ${name} Time from a request reaching the app to its answer being written`, `# TYPE ${name} histogram`];
    let cumulative = 0;
    LATENCY_BUCKETS.forEach((le, i) => {
      cumulative += this.latencyBuckets[i] as number;
      lines.push(`${name}_bucket{le="${le}"} ${cumulative}`);
    });
    cumulative += this.latencyBuckets[LATENCY_BUCKETS.length] as number;
    lines.push(`${name}_bucket{le="+Inf"} ${cumulative}`, `${name}_sum ${this.latencySum}`, `${name}_count ${cumulative}`);
    return `\n${lines.join('\n')}\n`;
  }
}
