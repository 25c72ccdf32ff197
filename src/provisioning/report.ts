// Pure: what a VM posts to /cloud-init/events, read into one bounded, cleaned BootEvent. Two
// shapes arrive there. cloud-init's `reporting` webhook handler posts `json.dumps(event.as_dict())`
// with no Content-Type: {"name", "description", "event_type": "start"|"finish", "origin",
// "timestamp"}, and finish events add "result": SUCCESS|WARN|FAIL. The `phone_home` module posts
// form data (instance_id, hostname, fqdn, pub_key_*), which requests sends as
// application/x-www-form-urlencoded. The guest writes every byte: nothing here is trusted beyond
// being shown to the operator, so every field is bounded and stripped of control characters.

import { MdsError } from '../errors.js';
import type { BootEvent } from '../store/store.js';

export const MAX_NAME = 128;
export const MAX_DESCRIPTION = 1024;
const RESULTS = new Set(['SUCCESS', 'WARN', 'FAIL']);

/**
 * Control characters (C0, DEL, C1), Unicode line and paragraph separators and the bidirectional
 * overrides: a terminal would act on them, and an event must not be able to rewrite the lines the
 * CLI prints around it. Runs of them, and of white space, become one space.
 */
const UNSAFE = /[\s\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+/gu;

/** `text` on one line, without control characters, at most `max` characters. */
export function clean(text: string, max: number): string {
  const one = text.replace(UNSAFE, ' ').trim();
  return one.length <= max ? one : `${one.slice(0, max - 1)}…`;
}

function field(o: Record<string, unknown>, key: string, max: number, required: boolean): string {
  const v = o[key];
  if (typeof v === 'string') return clean(v, max);
  if (v === undefined && !required) return '';
  throw new MdsError('BAD_REQUEST', `Bad event: "${key}" must be a string`);
}

/** A webhook event (JSON text). */
function webhookEvent(text: string, received: number): BootEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new MdsError('BAD_REQUEST', 'Bad event: the body is not JSON (expected a cloud-init reporting event)');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new MdsError('BAD_REQUEST', 'Bad event: expected a JSON object');
  }
  const o = parsed as Record<string, unknown>;
  const type = o['event_type'];
  if (type !== 'start' && type !== 'finish') throw new MdsError('BAD_REQUEST', 'Bad event: "event_type" must be "start" or "finish"');
  const name = field(o, 'name', MAX_NAME, true);
  if (name === '') throw new MdsError('BAD_REQUEST', 'Bad event: "name" is empty');
  let result: string | null = null;
  if (type === 'finish') {
    const r = o['result'];
    if (typeof r !== 'string' || !RESULTS.has(r)) throw new MdsError('BAD_REQUEST', 'Bad event: a finish event\'s "result" must be SUCCESS, WARN or FAIL');
    result = r;
  }
  return { received, kind: type, name, result, description: field(o, 'description', MAX_DESCRIPTION, false) };
}

/** A phone_home post (form data): its instance id and host name, for the timeline. */
function phoneHome(text: string, received: number): BootEvent {
  const form = new URLSearchParams(text);
  const parts: string[] = [];
  for (const key of ['instance_id', 'hostname', 'fqdn']) {
    const v = form.get(key);
    if (v !== null) parts.push(`${key}=${clean(v, 255)}`);
  }
  const keys = [...form.keys()].filter((k) => k.startsWith('pub_key_') && form.get(k) !== 'N/A').map((k) => clean(k, 32));
  if (keys.length > 0) parts.push(`host keys: ${keys.slice(0, 8).join(' ')}`);
  return { received, kind: 'phone-home', name: 'phone_home', result: null, description: clean(parts.join(', '), MAX_DESCRIPTION) };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The event in a body posted with `contentType`; BAD_REQUEST (400) for anything else. The caps on
 * the body's size are the route's (64 KiB).
 */
export function parseReport(body: Buffer, contentType: string | undefined, received: number): BootEvent {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new MdsError('BAD_REQUEST', 'Bad event: the body is not UTF-8 text');
  }
  // `curl -d` labels JSON as a form too: a body that opens an object is an event whatever its label.
  const form = (contentType ?? '').split(';')[0]?.trim().toLowerCase() === 'application/x-www-form-urlencoded';
  return form && !text.trimStart().startsWith('{') ? phoneHome(text, received) : webhookEvent(text, received);
}
