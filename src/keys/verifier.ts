import { createHash } from 'node:crypto';
import { type ErrorCode, KeygateError } from '../errors.js';
import { unixSeconds } from '../shared/clock.js';
import { ownEntry } from '../shared/null-proto-record.js';
import { TtlCache } from '../shared/ttl-cache.js';
import type { Invalidation } from '../store/invalidation-bus.js';
import type { KeyRecord } from '../store/key-store.js';
import { parseKey } from './key-format.js';
import type { KeyDeps } from './key-service.js';
import type { Principal } from './principal.js';

export type CacheEvent = 'hit' | 'miss' | 'negative_hit' | 'fill' | 'fill_discarded' | 'eviction';

/** Hooks for telemetry; the verifier itself knows nothing of Prometheus. */
export interface VerifierObserver {
  cacheEvent(event: CacheEvent): void;
  verifyDuration(seconds: number): void;
}

const NOOP_OBSERVER: VerifierObserver = { cacheEvent: () => {}, verifyDuration: () => {} };

export interface VerifierOptions extends KeyDeps {
  cacheTtlMs: number;
  negativeTtlMs: number;
  maxEntries: number;
  observer?: VerifierObserver;
}

/** Outcomes worth remembering for a while: they cannot turn into "valid" by waiting. */
type Refusal = Extract<
  ErrorCode,
  'invalid_key' | 'expired_key' | 'revoked_key' | 'account_disabled'
>;

/** A remembered refusal, with whose it was so an invalidation (re-enable) can drop it. */
interface RefusalEntry {
  code: Refusal;
  keyId: string;
  account: string | undefined;
}

const REFUSAL_MESSAGES: Record<Refusal, string> = {
  invalid_key: 'API key is not valid',
  expired_key: 'API key has expired',
  revoked_key: 'API key has been revoked',
  account_disabled: 'service account is disabled',
};

/**
 * Turns a presented key into a Principal or a KeygateError, in order of cost:
 * shape and checksum (no I/O) → verified-key cache → negative cache → one shared in-flight
 * verification per key → store look-up → argon2id in the bounded pool.
 *
 * Caches are keyed by SHA-256 of the presented key: the key itself is never held as a map key.
 */
export class KeyVerifier {
  private readonly verified: TtlCache<string, Principal>;
  private readonly refused: TtlCache<string, RefusalEntry>;
  private readonly inFlight = new Map<string, Promise<Principal>>();
  private readonly observer: VerifierObserver;
  /** Bumped by every invalidation, so a fill that started before one is thrown away. */
  private epoch = 0;

  /** Counters for tests and the benchmark: proof that cheap refusals stayed cheap. */
  readonly stats = { storeReads: 0, argon2Calls: 0 };

  constructor(private readonly options: VerifierOptions) {
    this.verified = new TtlCache(options.maxEntries);
    this.refused = new TtlCache(options.maxEntries);
    this.observer = options.observer ?? NOOP_OBSERVER;
  }

  async verify(presented: string): Promise<Principal> {
    const parsed = parseKey(presented, this.options.prefix);
    if (parsed === null) {
      throw new KeygateError('invalid_key', 'API key is malformed or its checksum does not match');
    }
    const digest = createHash('sha256').update(parsed.full).digest('base64');
    const now = this.options.clock.now();

    const cached = this.verified.get(digest, now);
    if (cached !== undefined) {
      this.observer.cacheEvent('hit');
      return cached;
    }
    const refusal = this.refused.get(digest, now);
    if (refusal !== undefined) {
      this.observer.cacheEvent('negative_hit');
      throw new KeygateError(refusal.code, REFUSAL_MESSAGES[refusal.code]);
    }
    this.observer.cacheEvent('miss');

    let pending = this.inFlight.get(digest);
    if (pending === undefined) {
      pending = this.verifyUncached(parsed.id, parsed.full, digest).finally(() => {
        this.inFlight.delete(digest);
      });
      this.inFlight.set(digest, pending);
    }
    return pending;
  }

  /** Drops every cached verdict about one key (revocation, expiry change). */
  invalidateKey(keyId: string): void {
    this.epoch++;
    this.verified.deleteWhere((p) => p.keyId === keyId);
    this.refused.deleteWhere((r) => r.keyId === keyId);
  }

  /** Drops every cached verdict about an account's keys (delete, disable, role change). */
  invalidateAccount(account: string): void {
    this.epoch++;
    this.verified.deleteWhere((p) => p.account === account);
    // Refusals too: re-enabling an account must let its keys in at once, on every replica.
    this.refused.deleteWhere((r) => r.account === account);
  }

  apply(event: Invalidation): void {
    if (event.kind === 'key') this.invalidateKey(event.id);
    else this.invalidateAccount(event.name);
  }

  clear(): void {
    this.epoch++;
    this.verified.clear();
    this.refused.clear();
  }

  private async verifyUncached(id: string, key: string, digest: string): Promise<Principal> {
    const epoch = this.epoch;
    const { store, pool, hasher, clock } = this.options;
    // Under a flood the pool is full: shed before the store read, so every refused request
    // costs as little as possible and valid cached traffic keeps the event loop.
    if (pool.saturated) throw pool.shedNow();
    this.stats.storeReads++;
    const record = await store.getKey(id);
    if (record === null) return this.refuse(digest, 'invalid_key', id);

    const started = performance.now();
    let matches: boolean;
    try {
      matches = await pool.run(() => {
        this.stats.argon2Calls++;
        return hasher.verify(record.hash, key);
      });
    } catch (err) {
      if (err instanceof KeygateError) throw err;
      // A corrupt hash or an argon2 failure refuses the request; it never lets it through.
      throw new KeygateError('internal_error', 'key verification failed', { cause: err });
    } finally {
      this.observer.verifyDuration((performance.now() - started) / 1000);
    }
    if (!matches) return this.refuse(digest, 'invalid_key', id);

    // Status is disclosed only to a caller who proved they hold the key.
    const nowSeconds = unixSeconds(clock);
    if (record.revokedAt > 0) return this.refuse(digest, 'revoked_key', id, record.account);
    if (record.expiresAt > 0 && record.expiresAt <= nowSeconds)
      return this.refuse(digest, 'expired_key', id, record.account);

    const account = await store.getAccount(record.account);
    // A key older than its account belongs to a deleted account of the same name: never revive it.
    if (account === null || record.createdAt < account.createdAt)
      return this.refuse(digest, 'invalid_key', id, record.account);
    // Remembered like the other refusals, so a disabled account's busy job costs no argon2 per request.
    if (account.disabled) return this.refuse(digest, 'account_disabled', id, account.name);

    const principal: Principal = {
      keyId: record.id,
      account: account.name,
      role: account.role,
      scopes: effectiveScopes(ownEntry(this.options.roles, account.role) ?? [], record),
      expiresAt: record.expiresAt,
    };
    if (epoch === this.epoch) {
      const now = clock.now();
      let until = now + this.options.cacheTtlMs;
      if (record.expiresAt > 0) until = Math.min(until, record.expiresAt * 1000);
      this.verified.set(digest, principal, until);
      this.observer.cacheEvent('fill');
    } else {
      this.observer.cacheEvent('fill_discarded');
    }
    return principal;
  }

  private refuse(digest: string, code: Refusal, keyId: string, account?: string): never {
    this.refused.set(
      digest,
      { code, keyId, account },
      this.options.clock.now() + this.options.negativeTtlMs,
    );
    throw new KeygateError(code, REFUSAL_MESSAGES[code]);
  }
}

/** A key may narrow its account's scopes, never widen them (even after a role downgrade). */
function effectiveScopes(roleScopes: readonly string[], record: KeyRecord): ReadonlySet<string> {
  if (record.scopes === null) return new Set(roleScopes);
  return new Set(record.scopes.filter((s) => roleScopes.includes(s)));
}
