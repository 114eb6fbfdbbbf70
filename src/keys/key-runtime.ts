import type { Config } from '../config/schema.js';
import type { Clock } from '../shared/clock.js';
import type { Invalidation, InvalidationBus } from '../store/invalidation-bus.js';
import type { KeyStore } from '../store/key-store.js';
import { WorkerArgon2Hasher } from './argon2-workers.js';
import type { Hasher } from './hasher.js';
import { type AuditEntry, type KeyDeps, KeyService } from './key-service.js';
import { type CacheEvent, KeyVerifier } from './verifier.js';
import { VerifyPool } from './verify-pool.js';

/**
 * What the key runtime reports, for metrics. The verifier's own observer (`cacheEvent`,
 * `verifyDuration`) plus the two cache events the runtime causes itself, and the pool's queue
 * depth, handed over once the pool exists so a gauge can read it when scraped.
 */
export interface KeyRuntimeObserver {
  cacheEvent(event: CacheEvent | 'invalidation' | 'clear'): void;
  verifyDuration(seconds: number): void;
  /** Called once, right after the pool is built; `read` is cheap (an array length). */
  watchQueueDepth(read: () => number): void;
}

/** Where the runtime's audit lines and warnings go (the process's logger, in practice). */
export interface KeyRuntimeLog {
  audit(entry: AuditEntry): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface KeyRuntimeOptions {
  config: Readonly<Pick<Config, 'keys' | 'roles'>>;
  /** The store (instrumented or not) and the bus openStore chose with it. */
  store: KeyStore;
  bus: InvalidationBus;
  clock: Clock;
  log: KeyRuntimeLog;
  observer?: KeyRuntimeObserver | undefined;
  /** argon2id in worker threads unless given (tests pass a fast stand-in). */
  hasher?: Hasher | undefined;
  /**
   * Whether to listen for other replicas' invalidations. A server must; the CLI does not: it
   * verifies no request, and a subscriber that exits would only make publishers wait for a
   * confirmation that never comes.
   */
  subscribe: boolean;
}

export interface KeyRuntime {
  readonly verifier: KeyVerifier;
  readonly service: KeyService;
  /**
   * A config reload's roles, for this process only (each replica reloads its own file): the
   * verifier drops every cached allow (their scopes came from the old roles) and the service
   * checks new grants against the new ones.
   */
  setRoles(roles: KeyDeps['roles']): void;
  /** Stops listening, closes the bus and the hasher. The store stays open: it is the caller's. */
  close(): Promise<void>;
}

const NOOP_OBSERVER: KeyRuntimeObserver = {
  cacheEvent: () => {},
  verifyDuration: () => {},
  watchQueueDepth: () => {},
};

/**
 * Builds everything keys need, in dependency order and once: pool → hasher → verifier →
 * service → invalidation subscription. Used by the server and the CLI alike.
 *
 * One invalidation path: a weakening write made here is applied to this process's verifier
 * exactly once, synchronously, before the write's call returns; then published, and the call
 * waits until every other replica confirmed it has dropped its verdicts (or the bus's bounded
 * wait ends: a warning). This process's own echo is confirmed by the bus but not delivered, so
 * it is not applied a second time. Events from other replicas are applied as they arrive.
 */
export function createKeyRuntime(options: KeyRuntimeOptions): KeyRuntime {
  const { config, store, bus, clock, log } = options;
  const observer = options.observer ?? NOOP_OBSERVER;
  const pool = new VerifyPool(config.keys.verifyConcurrency, config.keys.verifyQueue);
  observer.watchQueueDepth(() => pool.queueDepth);
  const hasher =
    options.hasher ?? new WorkerArgon2Hasher(config.keys.argon2, config.keys.verifyConcurrency);
  const deps = { store, hasher, pool, clock, prefix: config.keys.prefix, roles: config.roles };
  const verifier = new KeyVerifier({
    ...deps,
    cacheTtlMs: config.keys.cacheTtlMs,
    negativeTtlMs: config.keys.negativeCacheTtlMs,
    maxEntries: config.keys.cacheMaxEntries,
    failureBudget: {
      perKeyId: config.keys.failureBudget.perKeyId,
      perAddress: config.keys.failureBudget.perAddress,
      windowMs: config.keys.failureBudget.windowMs,
    },
    observer,
  });
  const apply = (event: Invalidation) => {
    observer.cacheEvent('invalidation');
    verifier.apply(event);
  };
  const service = new KeyService({
    ...deps,
    invalidate: async (event) => {
      // Here first and synchronously: this replica never answers from a verdict it just weakened.
      apply(event);
      try {
        const { receivers, confirmed } = await bus.publish(event);
        if (confirmed < receivers) {
          log.warn(
            { event, receivers, confirmed },
            `${receivers - confirmed} of ${receivers} replicas did not confirm a cache invalidation in time; they may accept the old state for up to keys.cacheTtl`,
          );
        }
      } catch (err) {
        // The write itself succeeded; other replicas fall back to the cache TTL.
        log.error(
          { err: String(err), event },
          `could not publish a cache invalidation; other replicas may accept the old state for up to keys.cacheTtl`,
        );
      }
    },
    audit: (entry) => log.audit(entry),
  });
  if (options.subscribe) {
    void bus.subscribe(apply, () => {
      observer.cacheEvent('clear');
      verifier.clear();
      log.warn(
        {},
        'invalidation channel reconnected: verified-key cache cleared, keys are checked afresh',
      );
    });
  }
  return {
    verifier,
    service,
    setRoles(roles) {
      observer.cacheEvent('clear');
      verifier.setRoles(roles);
      service.setRoles(roles);
    },
    async close() {
      await bus.close();
      await hasher.close?.();
    },
  };
}
