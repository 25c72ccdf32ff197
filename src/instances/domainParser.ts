// Parses uploaded domain XML without holding up the event loop. A document of the size libvirt
// writes is parsed at once on the main thread; anything with more markup goes to a small pool of
// worker threads, started when first needed and reused, so that a hostile maximum-size upload
// costs a worker its time and never delays a VM's metadata request.
//
// Why: the XML parser's cost grows with the number of elements and attributes (and worse with
// many distinct element names). A 1 MiB document blocked every request for over a second, and a
// 256 KiB one with many distinct elements still takes several hundred milliseconds.

import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { describe, MdsError, type ErrorCode } from '../errors.js';
import { parseDomainXml, type DomainInfo, type InterfaceMatch } from '../libvirt/domain.js';
import { moduleLogger } from '../log.js';
import type { ParseJob, ParseReply } from './parseWorker.js';

const log = moduleLogger('instances');

export interface DomainParserOptions {
  /** Worker threads at most; default one less than the cores, at least one and at most two. */
  readonly workers?: number;
  /**
   * Documents with at most this many `<` and `=` characters (elements and attributes) are parsed
   * on the main thread; default DEFAULT_INLINE_MARKS.
   */
  readonly inlineMarks?: number;
  /** A parse that takes longer is abandoned (its worker replaced) and the upload refused. */
  readonly timeoutMs?: number;
}

/**
 * `virsh dumpxml` of a running VM with a dozen devices has a few hundred `<` and `=`. Handing a
 * document to a worker cost about half as much CPU again as parsing it here (copying it and the
 * result across threads), so ordinary documents stay on the main thread; the worst document under
 * this bound (a thousand distinct element names) parses in a few times what an ordinary one
 * takes, milliseconds, against the hundreds of milliseconds a hostile 256 KiB one can take.
 */
export const DEFAULT_INLINE_MARKS = 1000;

interface Pending {
  readonly job: ParseJob;
  resolve(info: DomainInfo): void;
  reject(e: Error): void;
}

interface Running {
  readonly pending: Pending;
  readonly timer: NodeJS.Timeout;
}

/** True when `xml` has at most `limit` markup characters: cheap enough to parse inline. */
export function isSmallDocument(xml: string, limit: number): boolean {
  let marks = 0;
  for (let i = 0; i < xml.length; i++) {
    const c = xml.charCodeAt(i);
    // '<' and '='
    if ((c === 0x3c || c === 0x3d) && ++marks > limit) return false;
  }
  return true;
}

function defaultWorkers(): number {
  return Math.max(1, Math.min(2, os.availableParallelism() - 1));
}

export class DomainParser {
  private readonly size: number;
  private readonly inlineMarks: number;
  private readonly timeoutMs: number;
  private readonly workers = new Set<Worker>();
  private readonly idle: Worker[] = [];
  private readonly running = new Map<Worker, Running>();
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private started = 0;
  private closed = false;

  constructor(opts: DomainParserOptions = {}) {
    this.size = opts.workers ?? defaultWorkers();
    this.inlineMarks = opts.inlineMarks ?? DEFAULT_INLINE_MARKS;
    this.timeoutMs = opts.timeoutMs ?? 20_000;
  }

  /** How many worker threads have been started so far (a reused pool starts at most `workers`). */
  get workersStarted(): number {
    return this.started;
  }

  /** The facts of the domain `xml` describes; rejects with MdsError as parseDomainXml throws. */
  parse(xml: string, match: InterfaceMatch): Promise<DomainInfo> {
    if (isSmallDocument(xml, this.inlineMarks)) {
      try {
        return Promise.resolve(parseDomainXml(xml, match));
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    }
    if (this.closed) return Promise.reject(new MdsError('INTERNAL', 'the server is stopping'));
    return new Promise<DomainInfo>((resolve, reject) => {
      this.queue.push({ job: { id: this.nextId++, xml, match }, resolve, reject });
      this.dispatch();
    });
  }

  /** Stops every worker; documents still queued are refused. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new MdsError('INTERNAL', 'the server is stopping'));
    await Promise.all([...this.workers].map((w) => this.retire(w, new MdsError('INTERNAL', 'the server is stopping'))));
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      const w = this.idle.pop() ?? (this.workers.size < this.size ? this.spawn() : undefined);
      if (!w) return;
      const pending = this.queue.shift() as Pending;
      const timer = setTimeout(() => {
        log.warn('gave up parsing an uploaded domain XML', { ms: this.timeoutMs, bytes: pending.job.xml.length });
        void this.retire(w, new MdsError('BAD_DOMAIN_XML', `the domain XML took longer than ${this.timeoutMs / 1000} s to parse`));
      }, this.timeoutMs);
      this.running.set(w, { pending, timer });
      w.postMessage(pending.job);
    }
  }

  private spawn(): Worker {
    // A document that makes the parser allocate without bound kills its worker, not the server.
    const w = new Worker(new URL('./parseWorker.js', import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: 256 } });
    // An idle pool must not keep a stopping process alive.
    w.unref();
    this.workers.add(w);
    this.started++;
    w.on('message', (reply: ParseReply) => this.finished(w, reply));
    w.on('error', (e: Error & { code?: string }) => {
      const tooBig = e.code === 'ERR_WORKER_OUT_OF_MEMORY';
      if (!tooBig) log.error('the XML parser thread failed', { error: describe(e) });
      void this.retire(w, tooBig ? new MdsError('BAD_DOMAIN_XML', 'the domain XML is too complex to parse') : new MdsError('INTERNAL', 'Internal error'));
    });
    w.on('exit', () => void this.retire(w, new MdsError('INTERNAL', 'Internal error')));
    return w;
  }

  private finished(w: Worker, reply: ParseReply): void {
    const run = this.running.get(w);
    if (!run || run.pending.job.id !== reply.id) return;
    clearTimeout(run.timer);
    this.running.delete(w);
    this.idle.push(w);
    if (reply.ok) {
      run.pending.resolve(reply.info);
    } else {
      if (reply.code === null) log.error('parsing an uploaded domain XML failed', { error: reply.message });
      run.pending.reject(new MdsError((reply.code ?? 'INTERNAL') as ErrorCode, reply.code ? reply.message : 'Internal error'));
    }
    this.dispatch();
  }

  /** Takes `w` out of the pool for good, refusing its document with `why`; the queue moves on. */
  private async retire(w: Worker, why: Error): Promise<void> {
    if (!this.workers.delete(w)) return;
    const run = this.running.get(w);
    this.running.delete(w);
    const i = this.idle.indexOf(w);
    if (i >= 0) this.idle.splice(i, 1);
    if (run) {
      clearTimeout(run.timer);
      run.pending.reject(why);
    }
    this.dispatch();
    await w.terminate();
  }
}
