// Pure: a metadata tree as JSON, as Firecracker's MMDS answers `Accept: application/json`: a
// directory is an object of its whole subtree, a value is a string (a multi-line value such as
// security-groups stays one string, newlines and all).

import { MdsError } from '../errors.js';
import { isDeferred, isDir, type Node } from './tree.js';

export type Json = string | { [name: string]: Json };

/**
 * `node` as JSON; `userdata()` renders a deferred user-data value. Inside a directory, user-data
 * that does not exist (NOT_FOUND) is left out, as a directory lists only what answers; asked for
 * by itself it is the caller's 404. Public keys come out under their numbers (`0`), the tree's
 * own names: the `0=name` listing is the text protocol's.
 */
export function treeJson(node: Node, userdata: () => string): Json {
  if (isDeferred(node)) return userdata();
  if (!isDir(node)) return node;
  const out: { [name: string]: Json } = {};
  for (const [name, child] of node.entries) {
    try {
      out[name] = treeJson(child, userdata);
    } catch (e) {
      if (e instanceof MdsError && e.code === 'NOT_FOUND' && isDeferred(child)) continue;
      throw e;
    }
  }
  return out;
}
