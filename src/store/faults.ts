// Counts the store's failures, whatever the backend: a wrapper that sees every method's throw or
// rejection and reports the method's name before passing the error on unchanged. Refusals the
// store makes on purpose (a CONFLICT, a full pool) are answers, not failures, and are not counted.

import { isMdsError } from '../errors.js';
import type { Store } from './store.js';

/** A fault of the store itself: anything but an MdsError, or one that says the data is bad. */
export function isStoreFault(e: unknown): boolean {
  return !isMdsError(e) || e.code === 'DB_FORMAT' || e.code === 'INTERNAL';
}

/**
 * `store`, with `onFault(method)` called for each failed call. Properties that are not methods
 * (`generation`) are read straight through; the wrapped methods are made once, on first use.
 */
export function reportingFaults(store: Store, onFault: (operation: string) => void): Store {
  const wrapped = new Map<PropertyKey, unknown>();
  const fail = (op: string, e: unknown): never => {
    if (isStoreFault(e)) onFault(op);
    throw e;
  };
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      let w = wrapped.get(prop);
      if (w === undefined) {
        const fn = value as (...args: unknown[]) => unknown;
        w = (...args: unknown[]): unknown => {
          let r: unknown;
          try {
            r = fn.apply(target, args);
          } catch (e) {
            return fail(prop, e);
          }
          return r instanceof Promise ? r.catch((e: unknown) => fail(prop, e)) : r;
        };
        wrapped.set(prop, w);
      }
      return w;
    },
  });
}
