import type { AccountFilters } from '../keys/account-filters.js';

/** A service account as stored. Times are Unix seconds. */
export interface AccountRecord {
  readonly name: string;
  readonly role: string;
  readonly description: string;
  readonly disabled: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
  /**
   * Created (and so owned) by `keygate apply`: only such accounts are updated from, and pruned
   * by, an accounts file. Absent on accounts made by hand.
   */
  readonly managed?: boolean;
  /** Data filters per kind (DESIGN §16); absent = not filtered. Never stored as `{}`. */
  readonly filters?: AccountFilters;
  /** The account's own quota, over its role's default (DESIGN §16); absent: the default. */
  readonly rateLimit?: AccountRateLimit;
}

/** An account's quota: at most `requests` per `perSeconds` (whole seconds, ≥ 1). */
export interface AccountRateLimit {
  readonly requests: number;
  readonly perSeconds: number;
}

/**
 * An API key as stored: never the key itself, only its argon2id PHC string.
 * Times are Unix seconds; 0 means "never" for expiresAt and "not yet" for the others.
 */
export interface KeyRecord {
  readonly id: string;
  readonly account: string;
  readonly hash: string;
  readonly description: string;
  /** A subset of the account role's scopes, or null for "all of the role's scopes". */
  readonly scopes: readonly string[] | null;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly revokedAt: number;
  readonly lastUsedAt: number;
  /** Id of the key that replaced this one by rotation, or "" when it was not rotated. */
  readonly replacedBy: string;
  /** Bumped by every write to the record: writes are compare-and-set on it. */
  readonly generation: number;
  /**
   * Requests admitted with this key, as added by `addKeyUses` (absent: none yet). Like
   * lastUsedAt it has its own path: no other write sets it, and it does not move `generation`.
   */
  readonly requestCount?: number;
}

export interface AccountChange {
  role?: string;
  description?: string;
  disabled?: boolean;
  /** A new quota; null clears the account's own (its role's default applies again). */
  rateLimit?: AccountRateLimit | null;
  /** Replaces the whole set; `{}` clears it. */
  filters?: AccountFilters;
  updatedAt: number;
}

import type { AccountsBatch } from './accounts-batch.js';

/** Fields of a key that may change after creation (last use has its own, monotonic path). */
export type KeyChange = Partial<Pick<KeyRecord, 'expiresAt' | 'revokedAt' | 'replacedBy'>>;

/**
 * Where accounts and key hashes live. Implementations throw KeygateError with
 * `store_unavailable` for I/O faults, `conflict` for duplicates and `not_found` for a missing
 * parent; they never leave a half-written record behind a failed call.
 */
export interface KeyStore {
  readonly kind: 'redis' | 'file' | 'memory';
  getKey(id: string): Promise<KeyRecord | null>;
  getAccount(name: string): Promise<AccountRecord | null>;
  listAccounts(): Promise<AccountRecord[]>;
  listKeys(account: string): Promise<KeyRecord[]>;
  createAccount(account: AccountRecord): Promise<void>;
  /** Fails with not_found when the account does not exist, conflict when the id is taken. */
  createKey(key: KeyRecord): Promise<void>;
  /** not_found when the account does not exist. */
  updateAccount(name: string, change: AccountChange): Promise<AccountRecord>;
  /**
   * Deletes the account and every key of it; returns the deleted key ids. The account record
   * goes first, so its keys stop verifying even if the rest is interrupted.
   */
  deleteAccount(name: string): Promise<string[]>;
  /**
   * Compare-and-set on `generation`: conflict when the record changed since it was read,
   * not_found when it is gone. Returns the record as written (generation + 1).
   */
  updateKey(id: string, expectedGeneration: number, change: KeyChange): Promise<KeyRecord>;
  /**
   * Rotation: stores `next` and, only if `oldId` is still at `expectedGeneration` and not yet
   * replaced, sets its expiry to `oldExpiresAt` and its replacedBy to next.id. Otherwise
   * conflict, and `next` is not kept.
   */
  rotateKey(
    oldId: string,
    expectedGeneration: number,
    next: KeyRecord,
    oldExpiresAt: number,
  ): Promise<void>;
  /**
   * `keygate apply`: every write of the batch in one atomic step, or none (conflict when a
   * record the batch names changed since it was read).
   */
  applyAccounts(batch: AccountsBatch): Promise<void>;
  /** Raises last_used_at to the given times; never lowers it, never recreates a deleted key. */
  touchKeys(uses: ReadonlyArray<{ id: string; lastUsedAt: number }>): Promise<void>;
  /**
   * Adds each count (requests admitted, integers >= 1) to the key's requestCount; never
   * recreates a deleted key (a missing id is skipped). Replicas add their own counts: they sum.
   */
  addKeyUses(uses: ReadonlyArray<{ id: string; count: number }>): Promise<void>;
  /** Resolves when the store answers; rejects with store_unavailable otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
