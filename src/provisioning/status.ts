// Pure: an instance's provisioning status from its current boot's record. cloud-init's stages
// are `init-local`, `init-network`, `modules-config` and `modules-final`; each module's events are
// named `<stage>/config-<module>`, and a module that raises finishes with FAIL (and so does its
// stage). `modules-final` finishing is the end of a boot.

import type { BootEvent, BootRecord } from '../store/store.js';

export type Phase = 'waiting' | 'no-report' | 'booting' | 'ready' | 'failed';

export interface ProvisioningStatus {
  phase: Phase;
  /** The stage of the latest event (booting), else null. */
  stage: string | null;
  /** From the boot's first metadata request to modules-final's finish (or phone_home), in s. */
  seconds: number | null;
  /** The failing module (or stage) and its description, when a finish event said FAIL. */
  failure: { module: string; description: string } | null;
  /** The boot's number and its first metadata request (ISO time), for display. */
  boot: number | null;
  firstRequest: string | null;
  /** How many events the boot has (stored). */
  events: number;
  /** modules-final finished (or phone_home came): the next instance-id read is a new boot. */
  finished: boolean;
}

export const FINAL_STAGE = 'modules-final';

/** Whether `p` is the end of a boot (what `instances wait` waits for). */
export function isFinal(p: Phase): boolean {
  return p === 'ready' || p === 'failed';
}

function secondsBetween(from: number | null, to: number): number | null {
  return from === null ? null : Math.max(0, Math.round((to - from) / 100) / 10);
}

/**
 * The most telling failure: a module's (the deepest name) over its stage's, the first of those
 * over later ones.
 */
function failureOf(events: readonly BootEvent[]): ProvisioningStatus['failure'] {
  let best: BootEvent | undefined;
  for (const e of events) {
    if (e.kind !== 'finish' || e.result !== 'FAIL') continue;
    if (!best || e.name.split('/').length > best.name.split('/').length) best = e;
  }
  if (!best) return null;
  const module = best.name.includes('/') ? best.name.slice(best.name.indexOf('/') + 1) : best.name;
  return { module, description: best.description };
}

export function provisioningStatus(rec: BootRecord | undefined): ProvisioningStatus {
  const base = { stage: null, seconds: null, failure: null, boot: rec?.boot ?? null, events: rec?.events.length ?? 0,
    firstRequest: rec?.firstRequest == null ? null : new Date(rec.firstRequest).toISOString(), finished: false };
  if (!rec || (rec.firstRequest === null && rec.events.length === 0)) return { ...base, phase: 'waiting' };
  const events = rec.events;
  const last = events[events.length - 1];
  if (!last) return { ...base, phase: 'no-report' };
  const end = events.find((e) => e.kind === 'finish' && e.name === FINAL_STAGE);
  const failure = failureOf(events);
  if (failure) return { ...base, phase: 'failed', failure, finished: end !== undefined, seconds: end ? secondsBetween(rec.firstRequest, end.received) : null };
  if (end) return { ...base, phase: 'ready', finished: true, seconds: secondsBetween(rec.firstRequest, end.received) };
  // phone_home alone (an image that posts no events) is the end too: it runs in modules-final.
  const home = events.find((e) => e.kind === 'phone-home');
  if (home && events.every((e) => e.kind === 'phone-home')) return { ...base, phase: 'ready', finished: true, seconds: secondsBetween(rec.firstRequest, home.received) };
  return { ...base, phase: 'booting', stage: last.kind === 'phone-home' ? FINAL_STAGE : (last.name.split('/')[0] as string) };
}

/** The STATUS column: `waiting`, `booting: <stage>`, `ready 41s`, `failed: <module>`, `no report`. */
export function statusText(s: ProvisioningStatus): string {
  switch (s.phase) {
    case 'waiting': return 'waiting';
    case 'no-report': return 'no report';
    case 'booting': return `booting: ${s.stage ?? '?'}`;
    case 'ready': return s.seconds === null ? 'ready' : `ready ${Math.round(s.seconds)}s`;
    case 'failed': return `failed: ${s.failure?.module ?? '?'}`;
  }
}
