import { KeygateError } from '../errors.js';
import { sameFilters } from '../keys/account-filters.js';
import type { AccountRecord, KeyRecord } from './key-store.js';

/** Fields `keygate apply` may change on a key it keeps (its hash never changes). */
export type BatchKeyChange = Partial<
  Pick<KeyRecord, 'description' | 'scopes' | 'expiresAt' | 'revokedAt'>
>;

/**
 * Every write of one `keygate apply`, applied as one step: all of it or none of it. Each write
 * names the record as the plan read it, so a batch planned from a state that changed meanwhile
 * is refused with `conflict` (and re-planned) instead of overwriting what someone else wrote.
 */
export interface AccountsBatch {
  createAccounts: AccountRecord[];
  /** `next` is the whole account record as it is to be stored. */
  updateAccounts: Array<{ expected: AccountRecord; next: AccountRecord }>;
  /** Deleted with every key of theirs (`keyIds`: the keys the plan saw). */
  deleteAccounts: Array<{ expected: AccountRecord; keyIds: string[] }>;
  createKeys: KeyRecord[];
  updateKeys: Array<{ expected: KeyRecord; change: BatchKeyChange }>;
}

export function isEmptyBatch(batch: AccountsBatch): boolean {
  return (
    batch.createAccounts.length +
      batch.updateAccounts.length +
      batch.deleteAccounts.length +
      batch.createKeys.length +
      batch.updateKeys.length ===
    0
  );
}

/** The stored fields that make an account what it is: equal here = nobody wrote it since. */
export function sameAccount(a: AccountRecord, b: AccountRecord): boolean {
  return (
    a.name === b.name &&
    a.role === b.role &&
    a.description === b.description &&
    a.disabled === b.disabled &&
    (a.managed ?? false) === (b.managed ?? false) &&
    a.rateLimit?.requests === b.rateLimit?.requests &&
    a.rateLimit?.perSeconds === b.rateLimit?.perSeconds &&
    sameFilters(a.filters, b.filters) &&
    a.createdAt === b.createdAt &&
    a.updatedAt === b.updatedAt
  );
}

export function changedConcurrently(what: string): KeygateError {
  return new KeygateError(
    'conflict',
    `${what} was changed by another writer while apply ran; nothing was written, run apply again`,
  );
}

/** The key record a batch update produces: a write like any other, so its generation moves. */
export function changedKey(current: KeyRecord, change: BatchKeyChange): KeyRecord {
  return { ...current, ...change, generation: current.generation + 1 };
}

/** Get/set/delete over one table of a store held in memory (a Map or a null-prototype record). */
export interface RecordTable<T> {
  get(key: string): T | undefined;
  set(key: string, value: T): void;
  delete(key: string): void;
  values(): Iterable<T>;
}

/**
 * The file and memory stores' batch: every check first, then every write, so a refused batch
 * leaves the tables exactly as they were (the caller persists them in one write afterwards).
 */
export function applyBatchToTables(
  accounts: RecordTable<AccountRecord>,
  keys: RecordTable<KeyRecord>,
  batch: AccountsBatch,
): void {
  for (const account of batch.createAccounts) {
    if (accounts.get(account.name) !== undefined)
      throw changedConcurrently(`service account "${account.name}"`);
  }
  for (const { expected } of [...batch.updateAccounts, ...batch.deleteAccounts]) {
    const current = accounts.get(expected.name);
    if (current === undefined || !sameAccount(current, expected))
      throw changedConcurrently(`service account "${expected.name}"`);
  }
  const created = new Set(batch.createAccounts.map((a) => a.name));
  for (const key of batch.createKeys) {
    if (keys.get(key.id) !== undefined) throw changedConcurrently(`key ${key.id}`);
    if (accounts.get(key.account) === undefined && !created.has(key.account))
      throw changedConcurrently(`service account "${key.account}"`);
  }
  for (const { expected } of batch.updateKeys) {
    const current = keys.get(expected.id);
    if (current === undefined || current.generation !== expected.generation)
      throw changedConcurrently(`key ${expected.id}`);
  }
  for (const { expected } of batch.deleteAccounts) {
    accounts.delete(expected.name);
    const ids = [...keys.values()].filter((k) => k.account === expected.name).map((k) => k.id);
    for (const id of ids) keys.delete(id);
  }
  for (const account of batch.createAccounts) accounts.set(account.name, { ...account });
  for (const { next } of batch.updateAccounts) accounts.set(next.name, { ...next });
  for (const key of batch.createKeys) keys.set(key.id, { ...key });
  for (const { expected, change } of batch.updateKeys) {
    const current = keys.get(expected.id) as KeyRecord;
    keys.set(expected.id, changedKey(current, change));
  }
}
