// The one-time passwords of CloudStack's password server: the host sets one for a VM, the VM
// fetches it and acknowledges it, and it is gone. A password is never logged and never shown.

import { randomBytes } from 'node:crypto';
import type { ConfigSource } from '../config/index.js';
import { MdsError } from '../errors.js';
import { moduleLogger } from '../log.js';
import type { Store } from '../store/store.js';

const log = moduleLogger('passwords');

/**
 * What a password may be: the password server's answer is the bare text, and a CloudStack client
 * strips it and takes `saved_password` and `bad_request` as answers of their own.
 */
export function passwordProblem(pw: string): string | null {
  if (pw.length < 1 || pw.length > 512) return 'a password is 1 to 512 characters';
  if (!/^[\x21-\x7e]+$/.test(pw)) return 'a password is printable ASCII without spaces';
  if (pw === 'saved_password' || pw === 'bad_request') return `"${pw}" is an answer of the password protocol, not a password`;
  return null;
}

/** 20 characters of [A-Za-z0-9] from the system's random source: about 119 bits. */
export function generatePassword(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  while (out.length < 20) {
    for (const b of randomBytes(32)) {
      // 248 = 4 * 62: dropping the bytes above keeps every character equally likely.
      if (b < 248 && out.length < 20) out += alphabet[b % 62];
    }
  }
  return out;
}

export class Passwords {
  constructor(
    private readonly config: ConfigSource,
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  /** Sets the password of the instance named `name`; NOT_FOUND when there is none. */
  async set(name: string, password: string): Promise<void> {
    const problem = passwordProblem(password);
    if (problem) throw new MdsError('BAD_REQUEST', problem);
    await this.purge();
    const expires = this.now() + this.config().cloudstack.passwordTtl * 1000;
    if (!(await this.store.setPassword(name, password, expires))) {
      throw new MdsError('NOT_FOUND', `no instance named ${JSON.stringify(name)}`);
    }
    log.info('password set', { instance: name, expires: new Date(expires).toISOString() });
  }

  /** Whether a password waits for the instance named `name`. */
  pending(name: string): boolean {
    return this.store.password(name, this.now()) !== undefined;
  }

  /** The password waiting for the instance, which stays until acknowledged or expired. */
  fetch(name: string): string | undefined {
    const pw = this.store.password(name, this.now());
    if (pw !== undefined) log.info('password handed out', { instance: name });
    return pw;
  }

  /** The instance says it has saved its password: it is deleted. */
  async acknowledge(name: string): Promise<void> {
    if (await this.store.deletePassword(name)) log.info('password acknowledged and deleted', { instance: name });
  }

  /** Deletes the passwords past their time (they are never served: this frees their rows). */
  async purge(): Promise<void> {
    const n = await this.store.purgePasswords(this.now());
    if (n > 0) log.info('expired passwords deleted', { count: n });
  }
}
