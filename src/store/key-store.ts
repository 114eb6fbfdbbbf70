/** A service account as stored. Times are Unix seconds. */
export interface AccountRecord {
  readonly name: string;
  readonly role: string;
  readonly description: string;
  readonly disabled: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
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
  /** Bumped by every write to the record, so a cache fill can tell it raced one. */
  readonly generation: number;
}

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
  /** Resolves when the store answers; rejects with store_unavailable otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
