import type { Config } from '../config/schema.js';
import type { RateLimiter } from '../policy/rate-limiter.js';
import { FileKeyStore } from './file-key-store.js';
import { type InvalidationBus, LocalInvalidationBus } from './invalidation-bus.js';
import type { KeyStore } from './key-store.js';
import { RedisKeyStore } from './redis/redis-key-store.js';

export interface OpenStoreOptions {
  /**
   * true: reject if Redis cannot be reached now (CLI commands must fail clearly).
   * false: start anyway and keep reconnecting (a server comes up not-ready, then recovers).
   */
  requireConnection: boolean;
  onConnectError?: (err: unknown) => void;
  /** Every later connection error (reconnect attempts), for logging. */
  onError?: (err: Error) => void;
}

/**
 * A store and the bus its replicas share invalidations on. They are chosen together, from the
 * config, because they must match: Redis stores share invalidations over pub/sub on the same
 * Redis; a file store is held by one process (its lease), so its bus is in-process.
 */
export interface OpenedStore {
  store: KeyStore;
  bus: InvalidationBus;
  /** Redis: quotas counted on the same Redis, across replicas. File: none (counted in process). */
  rateLimiter?: RateLimiter;
}

export async function openStore(
  config: Config['store'],
  options: OpenStoreOptions,
): Promise<OpenedStore> {
  if (config.type === 'file') {
    // Losing the lease is logged like a connection error; ping() then fails readiness.
    const store = await FileKeyStore.open(config.file.path, {
      ...(options.onError ? { onLost: options.onError } : {}),
    });
    return { store, bus: new LocalInvalidationBus() };
  }
  const store = RedisKeyStore.create(config.redis, options.onError);
  try {
    await store.connect();
  } catch (err) {
    if (options.requireConnection) {
      await store.close();
      throw err;
    }
    options.onConnectError?.(err);
  }
  return { store, bus: store.createInvalidationBus(), rateLimiter: store.createRateLimiter() };
}
