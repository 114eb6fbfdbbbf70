import { KeygateError } from '../../src/errors.js';
import { type AccountsBatch, applyBatchToTables } from '../../src/store/accounts-batch.js';
import type {
  AccountChange,
  AccountRecord,
  KeyChange,
  KeyRecord,
  KeyStore,
} from '../../src/store/key-store.js';
import {
  applyAccountChange,
  applyKeyChange,
  checkRotatable,
  missingAccount,
} from '../../src/store/record-rules.js';

/** In-process store for unit tests and the contract suite's reference (test-only: keygate runs on Redis or a file). */
export class MemoryKeyStore implements KeyStore {
  readonly kind = 'memory';
  readonly accounts = new Map<string, AccountRecord>();
  readonly keys = new Map<string, KeyRecord>();
  /** Set to make every call fail as an unreachable store would. */
  down = false;
  /** Counts getKey calls, so tests can prove a path made no store round-trip. */
  reads = 0;

  private check(): void {
    if (this.down) throw new KeygateError('store_unavailable', 'key store unavailable');
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    this.reads++;
    this.check();
    return this.keys.get(id) ?? null;
  }
  async getAccount(name: string): Promise<AccountRecord | null> {
    this.check();
    return this.accounts.get(name) ?? null;
  }
  async listAccounts(): Promise<AccountRecord[]> {
    this.check();
    return [...this.accounts.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
  async listKeys(account: string): Promise<KeyRecord[]> {
    this.check();
    return [...this.keys.values()]
      .filter((k) => k.account === account)
      .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }
  async applyAccounts(batch: AccountsBatch): Promise<void> {
    this.check();
    // Checks run before any write (applyBatchToTables), so a refused batch changes nothing.
    applyBatchToTables(this.accounts, this.keys, batch);
  }
  async createAccount(account: AccountRecord): Promise<void> {
    this.check();
    if (this.accounts.has(account.name)) {
      throw new KeygateError('conflict', `service account "${account.name}" already exists`);
    }
    this.accounts.set(account.name, { ...account });
  }
  async createKey(key: KeyRecord): Promise<void> {
    this.check();
    if (!this.accounts.has(key.account)) {
      throw new KeygateError('not_found', `service account "${key.account}" does not exist`);
    }
    if (this.keys.has(key.id))
      throw new KeygateError('conflict', `key id ${key.id} already exists`);
    this.keys.set(key.id, { ...key, scopes: key.scopes ? [...key.scopes] : null });
  }
  async updateAccount(name: string, change: AccountChange): Promise<AccountRecord> {
    this.check();
    const account = this.accounts.get(name);
    if (account === undefined) throw missingAccount(name);
    const updated = applyAccountChange(account, change);
    this.accounts.set(name, updated);
    return updated;
  }
  async deleteAccount(name: string): Promise<string[]> {
    this.check();
    if (!this.accounts.delete(name)) throw missingAccount(name);
    const ids = [...this.keys.values()].filter((k) => k.account === name).map((k) => k.id);
    for (const id of ids) this.keys.delete(id);
    return ids;
  }
  async updateKey(id: string, expectedGeneration: number, change: KeyChange): Promise<KeyRecord> {
    this.check();
    const updated = applyKeyChange(id, this.keys.get(id), expectedGeneration, change);
    this.keys.set(id, updated);
    return updated;
  }
  async rotateKey(
    oldId: string,
    expectedGeneration: number,
    next: KeyRecord,
    oldExpiresAt: number,
  ): Promise<void> {
    this.check();
    const old = checkRotatable(oldId, this.keys.get(oldId), expectedGeneration);
    await this.createKey(next);
    this.keys.set(oldId, {
      ...old,
      expiresAt: oldExpiresAt,
      replacedBy: next.id,
      generation: old.generation + 1,
    });
  }
  async touchKeys(uses: ReadonlyArray<{ id: string; lastUsedAt: number }>): Promise<void> {
    this.check();
    for (const { id, lastUsedAt } of uses) {
      const key = this.keys.get(id);
      if (key && lastUsedAt > key.lastUsedAt) this.keys.set(id, { ...key, lastUsedAt });
    }
  }
  async addKeyUses(uses: ReadonlyArray<{ id: string; count: number }>): Promise<void> {
    this.check();
    for (const { id, count } of uses) {
      const key = this.keys.get(id);
      if (key && count > 0)
        this.keys.set(id, { ...key, requestCount: (key.requestCount ?? 0) + count });
    }
  }
  async ping(): Promise<void> {
    this.check();
  }
  async close(): Promise<void> {}
}
