// `mdserver instances wait NAME... [--timeout S] [--json]`: blocks until each named VM has finished
// provisioning (its cloud-init's modules-final, or a failure), so that
// `virsh start web1 && mdserver instances wait web1` works in scripts. Exit status: 0 all ready,
// 1 any failed (each failure printed), 2 timeout.

import type { InstanceJson, ProvisioningJson } from '../admin/protocol.js';
import { adminRequest, CommandError, err, errorMessage, out, type Parsed } from './common.js';
import { printable } from './table.js';

export const DEFAULT_WAIT_SECONDS = 900;
const POLL_MS = 1000;

export interface WaitJson {
  result: 'ready' | 'failed' | 'timeout';
  instances: { name: string; provisioning: ProvisioningJson | null }[];
}

function timeoutOf(p: Parsed): number {
  const t = p.values['timeout'];
  if (t === undefined) return DEFAULT_WAIT_SECONDS;
  const n = Number(t);
  if (typeof t !== 'string' || !/^\d+(\.\d+)?$/.test(t) || !Number.isFinite(n)) throw new CommandError(`--timeout: expected seconds, got ${String(t)}`, 2);
  return n;
}

async function statusOf(socket: string, name: string): Promise<ProvisioningJson | null> {
  const r = await adminRequest(socket, 'GET', `/instances/${encodeURIComponent(name)}`);
  if (r.status !== 200) throw new CommandError(errorMessage(r.body));
  return (r.body as InstanceJson).provisioning ?? null;
}

const final = (s: ProvisioningJson | null): boolean => s !== null && (s.phase === 'ready' || s.phase === 'failed');

function report(result: WaitJson, json: boolean): void {
  if (json) {
    out(JSON.stringify(result, null, 2));
    return;
  }
  for (const i of result.instances) {
    const s = i.provisioning;
    const line = `${printable(i.name)}: ${s ? printable(s.text) : 'unknown'}`;
    if (s?.phase === 'failed') err(`${line}${s.failure ? ` (${printable(s.failure.description)})` : ''}`);
    else if (result.result === 'timeout' && !final(s)) err(`${line}: not finished${s?.phase === 'no-report' ? ' (no event from its cloud-init: is reporting on?)' : ''}`);
    else out(line);
  }
  if (result.result === 'timeout') err('timed out');
}

export async function waitCommand(p: Parsed, names: string[], socket: string): Promise<number> {
  if (names.length === 0) throw new CommandError('expected wait NAME...', 2);
  const deadline = Date.now() + timeoutOf(p) * 1000;
  const json = p.values['json'] === true;
  const latest = new Map<string, ProvisioningJson | null>();
  for (;;) {
    for (const n of names) if (!final(latest.get(n) ?? null)) latest.set(n, await statusOf(socket, n));
    const all = names.map((name) => ({ name, provisioning: latest.get(name) ?? null }));
    const done = all.every((i) => final(i.provisioning));
    if (done || Date.now() >= deadline) {
      const failed = all.some((i) => i.provisioning?.phase === 'failed');
      const result: WaitJson = { result: done ? (failed ? 'failed' : 'ready') : 'timeout', instances: all };
      report(result, json);
      return result.result === 'ready' ? 0 : result.result === 'failed' ? 1 : 2;
    }
    await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))));
  }
}
