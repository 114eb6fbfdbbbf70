import { KeygateError } from '../errors.js';
import type { KeyStore } from './key-store.js';

export type Operation = Exclude<keyof KeyStore, 'kind'>;

/**
 * Wraps any KeyStore and reports each failure that means "store unreachable", by operation,
 * so metrics stay out of the store implementations.
 */
export function instrumentKeyStore(store: KeyStore, onError: (op: Operation) => void): KeyStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || property === 'constructor') return value;
      return (...args: unknown[]) => {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (result instanceof Promise) {
          return result.catch((err: unknown) => {
            if (err instanceof KeygateError && err.code === 'store_unavailable')
              onError(property as Operation);
            throw err;
          });
        }
        return result;
      };
    },
  });
}
