// Tells systemd about the service's state (sd_notify, for Type=notify units). Node cannot write to
// a unix datagram socket, so the message goes through systemd-notify: the unit sets
// NotifyAccess=all because the sender is a child process, and systemd-notify waits (a barrier)
// until systemd has read the message, so it is not lost when the child exits at once.

import { execFile } from 'node:child_process';
import { describe } from '../errors.js';
import { moduleLogger } from '../log.js';

const log = moduleLogger('systemd');

/** True when the process runs under a unit that expects notifications. */
export function notifyWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env['NOTIFY_SOCKET']);
}

/**
 * Sends `fields` (e.g. READY=1, STATUS=...) to systemd. Does nothing outside systemd; a failure is
 * logged and reported as false, never thrown: the service itself works either way.
 */
export function sdNotify(fields: Record<string, string>, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (!notifyWanted(env)) return Promise.resolve(false);
  const args = Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}`);
  return new Promise((resolve) => {
    execFile('systemd-notify', args, { env, timeout: 10000 }, (err, _stdout, stderr) => {
      if (err) {
        log.warn('cannot notify systemd', { fields: args.join(' '), error: describe(err), stderr: stderr.trim() });
        resolve(false);
        return;
      }
      log.debug('notified systemd', { fields: args.join(' ') });
      resolve(true);
    });
  });
}
