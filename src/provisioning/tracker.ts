// Provisioning status, the use case: notes each instance's boots (an upload, or instance-id read
// again after a finished boot, begins one; its first metadata request starts the clock), stores
// the events its cloud-init posts, and answers its status. Events are written in batches, at most
// every FLUSH_MS, so that a VM posting in a loop costs a few commits a second, not one per post.

import { moduleLogger } from '../log.js';
import type { BootEvent, Store } from '../store/store.js';
import { isFinal, provisioningStatus, type ProvisioningStatus } from './status.js';

const log = moduleLogger('provisioning');

/** Events kept per instance (its current boot's last ones). */
export const KEEP_EVENTS = 200;
const FLUSH_MS = 100;
/** Bound on the boots remembered in memory; past it the map starts over (they reload from the store). */
const MAX_LIVE = 65536;

/** Told once per boot when it ends: for the provisioning counters (set by the composition root). */
export type OutcomeObserver = (outcome: 'ready' | 'failed', seconds: number | null) => void;

interface Live {
  firstRequest: number | null;
  finished: boolean;
  /** The outcome of this boot was told to the observer. */
  told: boolean;
}

/**
 * Whether a request's path asks for the instance's identity: EC2 `meta-data/instance-id`,
 * OpenStack `meta_data.json`, NoCloud `meta-data`. cloud-init reads one of them first on every
 * boot, so after a finished boot it means the VM booted again.
 */
export function asksInstanceId(segs: readonly string[]): boolean {
  const parts = segs.filter((s) => s !== '');
  const last = parts[parts.length - 1];
  if (last === 'instance-id') return parts[parts.length - 2] === 'meta-data';
  if (last === 'meta_data.json') return parts[0] === 'openstack';
  return parts.length === 2 && parts[0] === 'nocloud' && last === 'meta-data';
}

export class ProvisioningTracker {
  /** Set by the composition root to count outcomes (metrics); never required. */
  onOutcome: OutcomeObserver | null = null;
  private live = new Map<string, Live>();
  private pending = new Map<string, BootEvent[]>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly store: Store) {}

  private load(uuid: string): Live {
    const s = provisioningStatus(this.store.bootRecord(uuid));
    const l: Live = { firstRequest: s.firstRequest === null ? null : Date.parse(s.firstRequest), finished: s.finished, told: isFinal(s.phase) };
    if (this.live.size >= MAX_LIVE) this.live = new Map();
    this.live.set(uuid, l);
    return l;
  }

  /** A metadata request of the instance `uuid` for the path `segs` (the hot path: a map lookup). */
  sawRequest(uuid: string, segs: readonly string[]): void {
    const l = this.live.get(uuid) ?? this.load(uuid);
    if (l.finished && asksInstanceId(segs)) return this.begin(uuid, Date.now(), true);
    if (l.firstRequest !== null) return;
    l.firstRequest = Date.now();
    this.store.markFirstRequest(uuid, l.firstRequest);
  }

  /** The domain was uploaded (it is starting): a new boot, waiting for its first request. */
  uploaded(uuid: string): void {
    this.begin(uuid, Date.now(), false);
  }

  private begin(uuid: string, now: number, byRequest: boolean): void {
    this.pending.delete(uuid);
    this.store.beginBoot(uuid, now, byRequest ? now : null);
    this.live.set(uuid, { firstRequest: byRequest ? now : null, finished: false, told: false });
    log.debug('new boot', { uuid, by: byRequest ? 'instance-id' : 'upload' });
  }

  /** Queues an event of the instance `uuid`; it is stored within FLUSH_MS. */
  report(uuid: string, event: BootEvent): void {
    let list = this.pending.get(uuid);
    if (!list) this.pending.set(uuid, (list = []));
    list.push(event);
    if (list.length > KEEP_EVENTS) list.shift();
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
  }

  /** Stores the queued events (also at close). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    if (batch.size === 0) return;
    this.pending = new Map();
    try {
      await this.store.appendBootEvents(batch, KEEP_EVENTS);
    } catch (e) {
      log.error('cannot store provisioning events', { instances: batch.size, error: e instanceof Error ? e.message : String(e) });
      return;
    }
    try {
      for (const uuid of batch.keys()) this.settle(uuid);
    } catch (e) {
      // At close the store may be gone by now; the events are stored, only the notes are lost.
      log.debug('cannot settle provisioning status', { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** After new events: notes a finished boot, and tells the observer of its outcome once. */
  private settle(uuid: string): void {
    const s = this.status(uuid);
    const l = this.live.get(uuid) ?? this.load(uuid);
    l.finished = s.finished;
    if (l.told || (s.phase !== 'ready' && s.phase !== 'failed')) return;
    l.told = true;
    log.info(s.phase === 'ready' ? 'instance provisioned' : 'instance failed provisioning', {
      uuid, seconds: s.seconds, module: s.failure?.module,
    });
    this.onOutcome?.(s.phase, s.seconds);
  }

  status(uuid: string): ProvisioningStatus {
    return provisioningStatus(this.store.bootRecord(uuid));
  }

  events(uuid: string): readonly BootEvent[] {
    return this.store.bootRecord(uuid)?.events ?? [];
  }

  close(): Promise<void> {
    return this.flush();
  }
}
