// How the server's V8 heap grows between two full collections. Set by the server process itself,
// so that every way of starting it (the systemd unit, `mdserver CONFIG`, `node bin/mdserver`,
// `npm start`) runs with it; an operator's own choice on node's command line wins (node refuses
// this V8 flag in NODE_OPTIONS).
//
// Why: a host holding 100,000 instances keeps about 110 MB of them in the old generation, and
// Node's HTTP server and Express leave several KB of each request there (objects that outlive two
// scavenges), so under load the heap fills with request garbage and each full collection marks
// the whole 110 MB again. V8 picks the growth itself: up to 4 times what was live (RSS over the
// 400 MB target, measured at 425 MiB), or, after an idle spell, at most 1.3 times (a full
// collection after every 30 MB or so of requests). Twice what was live keeps both in check: full
// collections every 15,000 leaf requests or so, RSS under 290 MiB (doc/benchmarks.md, "Fifth
// round").

import v8 from 'node:v8';

/** The old generation may grow to (1 + this / 100) times what the last full collection kept. */
export const HEAP_GROWING_PERCENT = 100;

const FLAG = 'heap-growing-percent';

/**
 * The V8 flag to set, or null when node was already given one on its command line
 * (`--heap-growing-percent=N` or `--heap_growing_percent N`: V8 reads either spelling).
 */
export function heapFlag(execArgv: readonly string[]): string | null {
  if (execArgv.some((a) => a.replace(/_/g, '-').startsWith(`--${FLAG}`))) return null;
  return `--${FLAG}=${HEAP_GROWING_PERCENT}`;
}

/**
 * Applies heapFlag to this process. V8 reads this flag at each full collection, so setting it
 * after start-up takes effect from the next one (test/heap-growth.test.ts measures that it does).
 */
export function tuneHeap(): string | null {
  const flag = heapFlag(process.execArgv);
  if (flag !== null) v8.setFlagsFromString(flag);
  return flag;
}
