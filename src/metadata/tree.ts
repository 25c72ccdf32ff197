// Pure: a metadata tree and the IMDS text protocol over it. Every path of every format is
// answered by one generic lookup, so a listing can only name what is actually served.

import type { VendorDataNode } from './vendorData.js';

/** A value that the HTTP layer produces on demand (rendered user-data, reporting vendor-data). */
export type Deferred = { readonly deferred: 'user-data' } | VendorDataNode;

export type Node = string | Dir | Deferred;

export interface Dir {
  readonly entries: ReadonlyMap<string, Node>;
  /** Overrides the listing (public-keys lists `0=name`); defaults to the entry names. */
  readonly listing?: readonly string[];
}

export function dir(entries: Iterable<readonly [string, Node]> | Record<string, Node>, listing?: readonly string[]): Dir {
  const map = new Map<string, Node>(Symbol.iterator in entries ? (entries as Iterable<[string, Node]>) : Object.entries(entries));
  return listing ? { entries: map, listing } : { entries: map };
}

export function isDir(n: Node): n is Dir {
  return typeof n === 'object' && 'entries' in n;
}

export function isDeferred(n: Node): n is Deferred {
  return typeof n === 'object' && 'deferred' in n;
}

/**
 * The IMDS listing: one entry per line, directories with a trailing `/`, no trailing newline.
 * cloud-init reads a line ending in `/` as a directory and anything else as a leaf.
 */
export function listDir(d: Dir): string {
  let text = listings.get(d);
  if (text === undefined) {
    const lines: string[] = [];
    if (d.listing) lines.push(...d.listing);
    else for (const [name, node] of d.entries) lines.push(isDir(node) ? `${name}/` : name);
    text = lines.join('\n');
    listings.set(d, text);
  }
  return text;
}

/** Listings already joined: a tree never changes once built, and cloud-init reads each many times. */
const listings = new WeakMap<Dir, string>();

/**
 * Follows `segments` from `root`. Empty segments (from a trailing or doubled slash) are ignored,
 * so `meta-data` and `meta-data/` name the same directory, as on EC2.
 */
export function lookup(root: Dir, segments: readonly string[]): Node | undefined {
  let node: Node = root;
  for (const seg of segments) {
    if (seg === '') continue;
    if (!isDir(node)) return undefined;
    const next: Node | undefined = node.entries.get(seg);
    if (next === undefined) return undefined;
    node = next;
  }
  return node;
}
