import type { Config } from '../config/schema.js';
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

export async function openStore(
  config: Config['store'],
  options: OpenStoreOptions,
): Promise<KeyStore> {
  if (config.type === 'file') {
    // Losing the lease is logged like a connection error; ping() then fails readiness.
    return FileKeyStore.open(config.file.path, {
      ...(options.onError ? { onLost: options.onError } : {}),
    });
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
  return store;
}

/** Redis stores share invalidations over pub/sub; a file store is one process, so in-process. */
export function createInvalidationBus(store: KeyStore): InvalidationBus {
  return store instanceof RedisKeyStore
    ? store.createInvalidationBus()
    : new LocalInvalidationBus();
}
