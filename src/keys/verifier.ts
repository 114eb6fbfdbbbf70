import { hash } from 'node:crypto';
import { type ErrorCode, KeygateError } from '../errors.js';
import { unixSeconds } from '../shared/clock.js';
import { ownEntry } from '../shared/null-proto-record.js';
import { TtlCache } from '../shared/ttl-cache.js';
import type { Invalidation } from '../store/invalidation-bus.js';
import type { KeyRecord } from '../store/key-store.js';
import { principalFilters } from './account-filters.js';
import {
  DEFAULT_FAILURE_BUDGET,
  FailureBudget,
  type FailureBudgetLimits,
} from './failure-budget.js';
import { parseKey } from './key-format.js';
import { AttributedKeyRefusal } from './key-refusal.js';
import type { KeyDeps } from './key-service.js';
import type { Principal } from './principal.js';

export type CacheEvent = 'hit' | 'miss' | 'negative_hit' | 'fill' | 'fill_discarded';

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
  /** Failed argon2 verifications allowed per key id and per client address; see FailureBudget. */
  failureBudget?: FailureBudgetLimits;
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

/** Who is asking, as far as the failure budget needs to know. */
export interface VerifyCaller {
  /** The client's address (the peer, or the client named by a trusted proxy). */
  clientAddress: string;
}

/**
 * How many times one verification is run from the store when invalidations keep landing
 * while it runs, before the request is refused (503 verify_overloaded) rather than allowed on
 * records that may be stale.
 */
const MAX_VERIFY_ATTEMPTS = 3;

/** What a key verified against once: while its record still holds this hash, no argon2 again. */
interface KnownGood {
  keyId: string;
  hash: string;
}

/**
 * Turns a presented key into a Principal or a KeygateError, in order of cost:
 * shape and checksum (no I/O) → verified-key cache → negative cache → failure budget →
 * shedding (unproven keys only) → one shared in-flight verification per key → store look-up
 * of the key and its account → argon2id in the bounded pool, unless this exact key verified
 * against this exact stored hash before.
 *
 * Caches are keyed by SHA-256 of the presented key: the key itself is never held as a map key.
 *
 * Revocation means now (DESIGN §12.4): every invalidation bumps an epoch and drops the
 * in-flight verifications, so a request that starts after it never joins one that read the
 * store before it; a verification that saw the epoch change while it ran is not used — it is
 * run again from the store — and neither its allow nor its refusal is cached.
 */
export class KeyVerifier {
  private readonly verified: TtlCache<string, Principal>;
  private readonly refused: TtlCache<string, RefusalEntry>;
  /**
   * Digest → the PHC string it verified against. Only a successful argon2 adds an entry, so a
   * flood cannot push real keys out; a key whose verified-cache entry expired re-verifies with
   * a store read and a string comparison, and is never shed or throttled.
   */
  private readonly knownGood: TtlCache<string, KnownGood>;
  private readonly inFlight = new Map<string, Promise<Principal>>();
  private readonly budget: FailureBudget;
  private readonly observer: VerifierObserver;
  /** Bumped by every invalidation, so a verification that started before one is not used. */
  private epoch = 0;
  /** Role → scopes; replaced by a config reload (setRoles). */
  private roles: KeyDeps['roles'];

  constructor(private readonly options: VerifierOptions) {
    this.verified = new TtlCache(options.maxEntries);
    this.refused = new TtlCache(options.maxEntries);
    this.knownGood = new TtlCache(options.maxEntries);
    this.budget = new FailureBudget(
      options.failureBudget ?? DEFAULT_FAILURE_BUDGET,
      options.maxEntries,
      options.clock,
    );
    this.observer = options.observer ?? NOOP_OBSERVER;
    this.roles = options.roles;
  }

  /**
   * A config reload changed the roles: every cached allow carries scopes computed from the old
   * ones, so all are dropped, and a verification running now is not used (the epoch moves) but
   * run again with the new roles. Refusals stay: none of them depends on a role.
   */
  setRoles(roles: KeyDeps['roles']): void {
    this.roles = roles;
    this.bumpEpoch();
    this.verified.clear();
  }

  async verify(presented: string, caller: VerifyCaller): Promise<Principal> {
    const parsed = parseKey(presented, this.options.prefix);
    if (parsed === null) {
      throw new KeygateError('invalid_key', 'API key is malformed or its checksum does not match');
    }
    // One-shot hash: no Hash object per request (about 0.4 µs less than createHash, measured).
    const digest = hash('sha256', parsed.full, 'base64');
    const now = this.options.clock.now();

    const cached = this.verified.get(digest, now);
    if (cached !== undefined) {
      this.observer.cacheEvent('hit');
      return cached;
    }
    const refusal = this.refused.get(digest, now);
    if (refusal !== undefined) {
      this.observer.cacheEvent('negative_hit');
      throw refusalError(refusal);
    }
    this.observer.cacheEvent('miss');

    // A key that verified before is proven: it needs no argon2, so neither the failure budget
    // nor a saturated pool may refuse it (DESIGN §12.6: never delay a key that verified before).
    const proven = this.knownGood.get(digest, now) !== undefined;
    if (!proven && this.budget.exhausted(parsed.id, caller.clientAddress)) {
      // Before the store read: a spent budget makes every further guess cost nothing.
      throw throttled();
    }

    const joined = this.inFlight.get(digest);
    if (joined !== undefined) return joined;
    // Under a flood the pool is full: shed an unproven key before the store read, so every
    // refused request costs as little as possible and valid traffic keeps the event loop.
    if (!proven && this.options.pool.saturated) throw this.options.pool.shedNow();
    const pending: Promise<Principal> = this.settle(
      parsed.id,
      parsed.full,
      digest,
      caller.clientAddress,
    ).finally(() => {
      // An invalidation may have dropped this entry and a newer verification taken its place.
      if (this.inFlight.get(digest) === pending) this.inFlight.delete(digest);
    });
    this.inFlight.set(digest, pending);
    return pending;
  }

  /** Drops every cached verdict about one key (revocation, expiry change). */
  invalidateKey(keyId: string): void {
    this.bumpEpoch();
    this.verified.deleteWhere((p) => p.keyId === keyId);
    this.refused.deleteWhere((r) => r.keyId === keyId);
  }

  /** Drops every cached verdict about an account's keys (delete, disable, role change). */
  invalidateAccount(account: string): void {
    this.bumpEpoch();
    this.verified.deleteWhere((p) => p.account === account);
    // Refusals too: re-enabling an account must let its keys in at once, on every replica.
    this.refused.deleteWhere((r) => r.account === account);
  }

  apply(event: Invalidation): void {
    if (event.kind === 'key') this.invalidateKey(event.id);
    else this.invalidateAccount(event.name);
  }

  clear(): void {
    this.bumpEpoch();
    this.verified.clear();
    this.refused.clear();
  }

  /**
   * Every in-flight verification may have read records the invalidation just changed: none may
   * be joined from now on (which key or account it concerns is not known before its read, so
   * all are dropped; invalidations are rare). Those already waiting re-verify (see settle).
   * `knownGood` stays: "this key matches this hash" does not change with any record's status.
   */
  private bumpEpoch(): void {
    this.epoch++;
    this.inFlight.clear();
  }

  /**
   * Runs one verification from the store until no invalidation landed while it ran, and only
   * then caches and returns it. A refusal reached across an invalidation is returned to the
   * requests already waiting (they started before the change returned, and refusing is the
   * safe side) but never cached; an allow is never returned: it is checked again.
   */
  private async settle(
    id: string,
    key: string,
    digest: string,
    clientAddress: string,
  ): Promise<Principal> {
    for (let attempt = 1; ; attempt++) {
      const epoch = this.epoch;
      const { principal, expiresAt } = await this.verifyOnce(id, key, digest, clientAddress, epoch);
      if (epoch === this.epoch) {
        const now = this.options.clock.now();
        let until = now + this.options.cacheTtlMs;
        if (expiresAt > 0) until = Math.min(until, expiresAt * 1000);
        this.verified.set(digest, principal, until);
        this.observer.cacheEvent('fill');
        return principal;
      }
      this.observer.cacheEvent('fill_discarded');
      if (attempt >= MAX_VERIFY_ATTEMPTS) {
        // Fail closed. Not store_unavailable: the store answered; its records kept changing.
        // The retries are cheap (the key is now known-good: store reads, no argon2).
        throw new KeygateError(
          'verify_overloaded',
          'keys or accounts kept changing while this key was verified; retry shortly',
        );
      }
    }
  }

  private async verifyOnce(
    id: string,
    key: string,
    digest: string,
    clientAddress: string,
    epoch: number,
  ): Promise<{ principal: Principal; expiresAt: number }> {
    const { store, clock } = this.options;
    const record = await store.getKey(id);
    if (record === null) return this.refuse(epoch, digest, 'invalid_key', id);

    // Status is checked before argon2, so a forged key for a revoked, expired or disabled id
    // costs a store read and nothing more (DESIGN §12.6). This tells a caller who holds only
    // a well-formed key for that id (not the secret) the id's status. Key ids are not secret:
    // they appear in logs, key lists, audit lines and error reports, and a revoked or expired
    // id never becomes usable again, so its status is no help to an attacker; running argon2
    // to hide it is the denial of service. A disabled account is the same case: the id is
    // unusable until an operator re-enables it, and "disabled" names no secret. A missing
    // account (deleted, or recreated after the key) answers invalid_key, like an unknown id.
    const nowSeconds = unixSeconds(clock);
    if (record.revokedAt > 0) return this.refuse(epoch, digest, 'revoked_key', id, record.account);
    if (record.expiresAt > 0 && record.expiresAt <= nowSeconds)
      return this.refuse(epoch, digest, 'expired_key', id, record.account);

    const account = await store.getAccount(record.account);
    // A key older than its account belongs to a deleted account of the same name: never revive it.
    if (account === null || record.createdAt < account.createdAt)
      return this.refuse(epoch, digest, 'invalid_key', id, record.account);
    if (account.disabled) return this.refuse(epoch, digest, 'account_disabled', id, account.name);

    await this.proveKey(record, key, digest, clientAddress, epoch);

    const principal: Principal = {
      keyId: record.id,
      account: account.name,
      role: account.role,
      scopes: effectiveScopes(ownEntry(this.roles, account.role) ?? [], record),
      expiresAt: record.expiresAt,
      filters: principalFilters(account.filters),
      rateLimit: account.rateLimit,
    };
    return { principal, expiresAt: record.expiresAt };
  }

  /** Resolves when the key matches the record's hash; throws a refusal otherwise. */
  private async proveKey(
    record: KeyRecord,
    key: string,
    digest: string,
    clientAddress: string,
    epoch: number,
  ): Promise<void> {
    const known = this.knownGood.get(digest, this.options.clock.now());
    if (known !== undefined && known.keyId === record.id && known.hash === record.hash) {
      // Same key, same PHC string (salt included): argon2 would answer "yes" again.
      return;
    }
    // Reserved before argon2 and checked atomically with it, so that concurrent forged keys
    // for one id cannot all pass the budget check before the first of them fails.
    const charge = this.budget.charge(record.id, clientAddress);
    if (charge === null) throw throttled();
    const { pool, hasher } = this.options;
    const started = performance.now();
    let ran = false;
    let matches: boolean;
    try {
      matches = await pool.run(() => {
        ran = true;
        return hasher.verify(record.hash, key);
      });
    } catch (err) {
      if (!ran) this.budget.refund(charge); // shed by the pool: argon2 never ran
      if (err instanceof KeygateError) throw err;
      // A corrupt hash or an argon2 failure refuses the request; it never lets it through.
      throw new KeygateError('internal_error', 'key verification failed', { cause: err });
    } finally {
      // Only verifications that ran: a job shed by the full pool is not an argon2 run, and
      // counting its ~0 s would skew the histogram and its _count (argon2 runs) in a flood.
      if (ran) this.observer.verifyDuration((performance.now() - started) / 1000);
    }
    if (!matches) return this.refuse(epoch, digest, 'invalid_key', record.id);
    this.budget.refund(charge);
    // A fact about this key and this hash, true whatever happens to the record's status, so it
    // is kept even when the epoch moved (the retry then needs no argon2).
    this.knownGood.set(digest, { keyId: record.id, hash: record.hash }, Number.POSITIVE_INFINITY);
  }

  /** Throws the refusal; remembers it only when no invalidation landed since `epoch`. */
  private refuse(
    epoch: number,
    digest: string,
    code: Refusal,
    keyId: string,
    account?: string,
  ): never {
    if (epoch === this.epoch) {
      this.refused.set(
        digest,
        { code, keyId, account },
        this.options.clock.now() + this.options.negativeTtlMs,
      );
    } else {
      this.observer.cacheEvent('fill_discarded');
    }
    throw refusalError({ code, keyId, account });
  }
}

/** The error for a refusal; expired, revoked and disabled name their record (see AttributedKeyRefusal). */
function refusalError(refusal: RefusalEntry): KeygateError {
  const { code, keyId, account } = refusal;
  if (code !== 'invalid_key' && account !== undefined) {
    return new AttributedKeyRefusal(code, REFUSAL_MESSAGES[code], keyId, account);
  }
  return new KeygateError(code, REFUSAL_MESSAGES[code]);
}

function throttled(): KeygateError {
  return new KeygateError(
    'auth_throttled',
    'too many failed key verifications for this key id or from this address; retry later',
  );
}

/** A key may narrow its account's scopes, never widen them (even after a role downgrade). */
function effectiveScopes(roleScopes: readonly string[], record: KeyRecord): ReadonlySet<string> {
  if (record.scopes === null) return new Set(roleScopes);
  return new Set(record.scopes.filter((s) => roleScopes.includes(s)));
}
