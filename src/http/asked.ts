// What the public app's handlers read of a request: Node's own request and its path. Express's
// request is one (its `path` is a getter); a metadata request answered before Express (app.ts)
// carries the path as a property of its own.

import type { IncomingMessage } from 'node:http';

export type Asked = IncomingMessage & { readonly path: string };

/** `req` as an Asked, its path (the URL before any `?`) set once. */
export function asked(req: IncomingMessage, path: string): Asked {
  return Object.assign(req, { path });
}
