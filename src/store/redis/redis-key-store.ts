import { KeygateError } from '../../errors.js';
import { RedisInvalidationBus } from '../invalidation-bus.js';
import type { AccountChange, AccountRecord, KeyChange, KeyRecord, KeyStore } from '../key-store.js';
import { alreadyRotated, missingAccount, missingKey, staleKey } from '../record-rules.js';
import {
  createClient,
  describeTarget,
  duplicateForSubscriber,
  pingAll,
  type RedisClient,
  type RedisConfig,
} from './client.js';
import { decodeAccount, decodeKey, encodeAccount, encodeKey } from './record-codec.js';
import {
  defineScripts,
  type StoreScripts,
  UPDATE_KEY_MISSING,
  UPDATE_KEY_ROTATED,
  UPDATE_KEY_STALE,
} from './scripts.js';

/** How long a key's record outlives its expiry, so "expired" can still be told from "unknown". */
const EXPIRED_RECORD_RETENTION_SECONDS = 30 * 86_400;

/**
 * Redis-backed store shared by replicas. Schema (hash tags keep each record on one slot):
 * `<p>acct:{name}` hash, `<p>key:{id}` hash, `<p>acct-keys:{name}` set, `<p>accounts` set.
 *
 * Writes that touch several slots are ordered so that a failure half-way leaves only
 * unreachable garbage: the key record names its account, and a key only works while that
 * account's record exists.
 */
export class RedisKeyStore implements KeyStore {
  readonly kind = 'redis';

  /** The most recent connection error, for connect()'s message; cleared on ready. */
  private lastError: Error | undefined;
  private readonly scripts: StoreScripts;

  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
    private readonly description: string,
    onError?: (err: Error) => void,
  ) {
    this.scripts = defineScripts(client);
    // Without a listener ioredis prints every reconnect failure to stderr itself.
    client.on('error', (err: Error) => {
      this.lastError = err;
      onError?.(err);
    });
    client.on('ready', () => {
      this.lastError = undefined;
    });
  }

  /** Builds the client; the caller decides whether to wait for the first connection. */
  static create(config: RedisConfig, onError?: (err: Error) => void): RedisKeyStore {
    return new RedisKeyStore(
      createClient(config),
      config.keyPrefix,
      describeTarget(config),
      onError,
    );
  }

  /** Pub/sub for cache invalidations, on its own connection to the same Redis. */
  createInvalidationBus(): RedisInvalidationBus {
    return new RedisInvalidationBus(
      this.client,
      () => duplicateForSubscriber(this.client),
      `${this.prefix}events`,
    );
  }

  /** Resolves once connected; rejects (without stopping reconnection) if the first try fails. */
  async connect(): Promise<void> {
    try {
      if (this.client.status === 'wait') await this.client.connect();
      else if (this.client.status !== 'ready') await this.ping();
    } catch (err) {
      const reason = this.lastError?.message ?? (err instanceof Error ? err.message : String(err));
      throw new KeygateError(
        'store_unavailable',
        `cannot reach Redis (${this.description}): ${reason}`,
        { cause: err },
      );
    }
  }

  private keyKey(id: string) {
    return `${this.prefix}key:{${id}}`;
  }
  private accountKey(name: string) {
    return `${this.prefix}acct:{${name}}`;
  }
  private accountKeysKey(name: string) {
    return `${this.prefix}acct-keys:{${name}}`;
  }
  private get accountsKey() {
    return `${this.prefix}accounts`;
  }

  getKey(id: string): Promise<KeyRecord | null> {
    return guard(async () => decodeKey(await this.client.hgetall(this.keyKey(id))));
  }

  getAccount(name: string): Promise<AccountRecord | null> {
    return guard(async () => decodeAccount(await this.client.hgetall(this.accountKey(name))));
  }

  listAccounts(): Promise<AccountRecord[]> {
    return guard(async () => {
      const names = await this.client.smembers(this.accountsKey);
      const records = await Promise.all(names.map((n) => this.client.hgetall(this.accountKey(n))));
      return records
        .map(decodeAccount)
        .filter((a): a is AccountRecord => a !== null)
        .sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  listKeys(account: string): Promise<KeyRecord[]> {
    return guard(async () => {
      const ids = await this.client.smembers(this.accountKeysKey(account));
      const records = await Promise.all(ids.map((id) => this.client.hgetall(this.keyKey(id))));
      return records
        .map(decodeKey)
        .filter((k): k is KeyRecord => k !== null && k.account === account)
        .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
    });
  }

  createAccount(account: AccountRecord): Promise<void> {
    return guard(async () => {
      const created = await this.scripts.kgCreateHash(
        this.accountKey(account.name),
        ...encodeAccount(account),
      );
      if (created !== 1) {
        throw new KeygateError('conflict', `service account "${account.name}" already exists`);
      }
      try {
        await this.client.sadd(this.accountsKey, account.name);
      } catch (err) {
        await this.client.del(this.accountKey(account.name)).catch(() => undefined);
        throw err;
      }
    });
  }

  createKey(key: KeyRecord): Promise<void> {
    return guard(async () => {
      await this.writeNewKey(key);
      await this.indexNewKey(key);
    });
  }

  updateAccount(name: string, change: AccountChange): Promise<AccountRecord> {
    return guard(async () => {
      const fields: string[] = ['updated_at', String(change.updatedAt)];
      if (change.role !== undefined) fields.push('role', change.role);
      if (change.description !== undefined) fields.push('description', change.description);
      if (change.disabled !== undefined) fields.push('disabled', change.disabled ? '1' : '0');
      if ((await this.scripts.kgUpdateHash(this.accountKey(name), ...fields)) !== 1)
        throw missingAccount(name);
      const updated = decodeAccount(await this.client.hgetall(this.accountKey(name)));
      if (updated === null) throw missingAccount(name);
      return updated;
    });
  }

  deleteAccount(name: string): Promise<string[]> {
    return guard(async () => {
      // The account record goes first: from then on none of its keys verifies, whatever follows.
      if ((await this.client.del(this.accountKey(name))) !== 1) throw missingAccount(name);
      await this.client.srem(this.accountsKey, name);
      const ids = await this.client.smembers(this.accountKeysKey(name));
      await Promise.all(ids.map((id) => this.client.del(this.keyKey(id))));
      await this.client.del(this.accountKeysKey(name));
      return ids;
    });
  }

  updateKey(id: string, expectedGeneration: number, change: KeyChange): Promise<KeyRecord> {
    return guard(async () => {
      await this.compareAndSet(id, expectedGeneration, change, false);
      const updated = decodeKey(await this.client.hgetall(this.keyKey(id)));
      if (updated === null) throw missingKey(id);
      return updated;
    });
  }

  rotateKey(
    oldId: string,
    expectedGeneration: number,
    next: KeyRecord,
    oldExpiresAt: number,
  ): Promise<void> {
    return guard(async () => {
      // The new record is written first but reachable (listed) only once the old key's CAS wins;
      // if it loses, the new record is removed and nobody ever saw its key.
      await this.writeNewKey(next);
      try {
        await this.compareAndSet(
          oldId,
          expectedGeneration,
          { expiresAt: oldExpiresAt, replacedBy: next.id },
          true,
        );
      } catch (err) {
        await this.client.del(this.keyKey(next.id)).catch(() => undefined);
        throw err;
      }
      await this.indexNewKey(next);
    });
  }

  touchKeys(uses: ReadonlyArray<{ id: string; lastUsedAt: number }>): Promise<void> {
    return guard(async () => {
      // One script call per key: keys live on different slots in a cluster; auto-pipelining batches them.
      await Promise.all(
        uses.map(({ id, lastUsedAt }) =>
          this.scripts.kgTouchKey(this.keyKey(id), String(lastUsedAt)),
        ),
      );
    });
  }

  private async compareAndSet(
    id: string,
    expectedGeneration: number,
    change: KeyChange,
    requireNotReplaced: boolean,
  ) {
    const fields: string[] = [];
    if (change.expiresAt !== undefined) fields.push('expires_at', String(change.expiresAt));
    if (change.revokedAt !== undefined) fields.push('revoked_at', String(change.revokedAt));
    if (change.replacedBy !== undefined) fields.push('replaced_by', change.replacedBy);
    const expireAt = change.expiresAt ? change.expiresAt + EXPIRED_RECORD_RETENTION_SECONDS : 0;
    const result = await this.scripts.kgUpdateKey(
      this.keyKey(id),
      String(expectedGeneration),
      String(expireAt),
      requireNotReplaced ? '1' : '0',
      ...fields,
    );
    if (result === UPDATE_KEY_MISSING) throw missingKey(id);
    if (result === UPDATE_KEY_STALE) throw staleKey(id);
    if (result === UPDATE_KEY_ROTATED) throw alreadyRotated(id);
  }

  private async writeNewKey(key: KeyRecord): Promise<void> {
    if ((await this.client.exists(this.accountKey(key.account))) !== 1)
      throw missingAccount(key.account);
    if ((await this.scripts.kgCreateHash(this.keyKey(key.id), ...encodeKey(key))) !== 1) {
      throw new KeygateError('conflict', `key id ${key.id} already exists`);
    }
  }

  private async indexNewKey(key: KeyRecord): Promise<void> {
    const recordKey = this.keyKey(key.id);
    try {
      if (key.expiresAt > 0)
        await this.client.expireat(recordKey, key.expiresAt + EXPIRED_RECORD_RETENTION_SECONDS);
      await this.client.sadd(this.accountKeysKey(key.account), key.id);
    } catch (err) {
      await this.client.del(recordKey).catch(() => undefined);
      throw err;
    }
  }

  ping(): Promise<void> {
    return guard(() => pingAll(this.client));
  }

  async close(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}

/** Turns every client failure into store_unavailable; domain errors pass through. */
async function guard<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    if (err instanceof KeygateError) throw err;
    throw new KeygateError('store_unavailable', 'key store unavailable', { cause: err });
  }
}
