// Waiting on a guest: bounded, and gentle with a CPU the guest itself needs (under TCG every
// process the test spawns while polling takes time from the emulated machine).

/** Thrown by a probe to end the wait at once (the guest died): waiting longer cannot help. */
export class GiveUp extends Error {}

/**
 * Calls `probe` every `intervalMs` until it returns true; fails after `timeoutMs`. A probe that
 * throws is retried (the thing may not be there yet), except with GiveUp, which ends the wait.
 */
export async function poll(what: string, probe: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 1000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      if (await probe()) return;
    } catch (e) {
      if (e instanceof GiveUp) throw e;
      last = e;
    }
    if (Date.now() > end) {
      const why = last instanceof Error ? ` (last error: ${last.message.split('\n')[0]})` : '';
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
