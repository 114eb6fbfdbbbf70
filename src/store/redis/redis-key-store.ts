import { Cluster } from 'ioredis';
import { KeygateError } from '../../errors.js';
import { encodeFilters } from '../../keys/account-filters.js';
import {
  type AccountsBatch,
  type BatchKeyChange,
  changedConcurrently,
  changedKey,
  isEmptyBatch,
  sameAccount,
} from '../accounts-batch.js';
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
import { RedisRateLimiter } from './rate-limit-script.js';
import {
  decodeAccount,
  decodeKey,
  encodeAccount,
  encodeKey,
  encodeRateLimit,
} from './record-codec.js';
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

  /** Per-account quotas counted on the same Redis, so every replica shares them (DESIGN §16). */
  createRateLimiter(): RedisRateLimiter {
    return new RedisRateLimiter(this.client, this.prefix);
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
      if (change.rateLimit !== undefined)
        fields.push('rate_limit', encodeRateLimit(change.rateLimit));
      if (change.filters !== undefined) fields.push('filters', encodeFilters(change.filters));
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

  /**
   * One `keygate apply`. Single Redis (or Sentinel): WATCH every record the batch names on a
   * connection of its own, check them, then one MULTI/EXEC: all of it or nothing, and EXEC
   * fails (conflict) if any watched record changed meanwhile. Cluster: records live on
   * different slots, so no transaction spans them; the writes run one by one, weakening ones
   * (revocations, deletions) first, and an interrupted apply is completed by running it again
   * (the plan is a diff against the store).
   */
  applyAccounts(batch: AccountsBatch): Promise<void> {
    return guard(async () => {
      if (isEmptyBatch(batch)) return; // WATCH with no keys is an error, and there is nothing to do
      if (this.client instanceof Cluster) {
        await this.checkBatch(this.client, batch);
        // The check is no lock: each write that could undo someone else's (a key update over a
        // revoke that landed since, a creation over a record made since) is a single-key
        // compare-and-set that refuses instead (conflict: apply re-plans).
        for (const [command, ...args] of await this.batchCommands(this.client, batch, true)) {
          if (command === CLUSTER_CAS_KEY) {
            const [what, recordKey, ...rest] = args as [string, string, ...string[]];
            if ((await this.scripts.kgUpdateKey(recordKey, ...rest)) < 0)
              throw changedConcurrently(what);
          } else if (command === CLUSTER_CREATE) {
            const [what, recordKey, ...fields] = args as [string, string, ...string[]];
            if ((await this.scripts.kgCreateHash(recordKey, ...fields)) !== 1)
              throw changedConcurrently(what);
          } else await this.client.call(command, ...args);
        }
        return;
      }
      // Its own connection: WATCH holds per connection, and another caller's EXEC on the shared
      // one would silently drop it.
      const conn = this.client.duplicate({ enableAutoPipelining: false });
      conn.on('error', () => undefined);
      try {
        await conn.connect();
        await conn.watch(...this.watchedKeys(batch));
        await this.checkBatch(conn, batch);
        const commands = await this.batchCommands(conn, batch);
        const multi = conn.multi();
        for (const [command, ...args] of commands) multi.call(command, ...args);
        const results = await multi.exec();
        if (results === null) throw changedConcurrently('a record this apply reads');
        for (const [err] of results) if (err) throw err;
      } finally {
        conn.disconnect();
      }
    });
  }

  private watchedKeys(batch: AccountsBatch): string[] {
    const keys = new Set<string>();
    for (const a of batch.createAccounts) keys.add(this.accountKey(a.name));
    for (const { expected } of [...batch.updateAccounts, ...batch.deleteAccounts]) {
      keys.add(this.accountKey(expected.name));
      keys.add(this.accountKeysKey(expected.name));
    }
    for (const k of batch.createKeys) {
      keys.add(this.keyKey(k.id));
      keys.add(this.accountKey(k.account));
    }
    for (const { expected } of batch.updateKeys) keys.add(this.keyKey(expected.id));
    return [...keys];
  }

  /** The batch's expectations against what the store holds now: conflict on any difference. */
  private async checkBatch(conn: RedisClient, batch: AccountsBatch): Promise<void> {
    for (const account of batch.createAccounts) {
      if ((await conn.exists(this.accountKey(account.name))) !== 0)
        throw changedConcurrently(`service account "${account.name}"`);
    }
    for (const { expected } of [...batch.updateAccounts, ...batch.deleteAccounts]) {
      const current = decodeAccount(await conn.hgetall(this.accountKey(expected.name)));
      if (current === null || !sameAccount(current, expected))
        throw changedConcurrently(`service account "${expected.name}"`);
    }
    const created = new Set(batch.createAccounts.map((a) => a.name));
    for (const key of batch.createKeys) {
      if ((await conn.exists(this.keyKey(key.id))) !== 0)
        throw changedConcurrently(`key ${key.id}`);
      if (!created.has(key.account) && (await conn.exists(this.accountKey(key.account))) !== 1)
        throw changedConcurrently(`service account "${key.account}"`);
    }
    for (const { expected } of batch.updateKeys) {
      const current = decodeKey(await conn.hgetall(this.keyKey(expected.id)));
      if (current === null || current.generation !== expected.generation)
        throw changedConcurrently(`key ${expected.id}`);
    }
  }

  /** The batch as Redis commands, weakening writes first (the order matters on a Cluster). */
  private async batchCommands(
    conn: RedisClient,
    batch: AccountsBatch,
    cluster = false,
  ): Promise<Array<[string, ...string[]]>> {
    const commands: Array<[string, ...string[]]> = [];
    for (const { expected, change } of batch.updateKeys) {
      const next = changedKey(expected, change);
      const recordKey = this.keyKey(expected.id);
      if (cluster) {
        // Only the changed fields, and only if the generation is still the one the plan read.
        const at = change.expiresAt ? change.expiresAt + EXPIRED_RECORD_RETENTION_SECONDS : 0;
        commands.push([
          CLUSTER_CAS_KEY,
          `key ${expected.id}`,
          recordKey,
          String(expected.generation),
          String(at),
          '0',
          ...changedKeyFields(change),
        ]);
        if (change.expiresAt === 0) commands.push(['PERSIST', recordKey]);
        continue;
      }
      commands.push([
        'HSET',
        recordKey,
        ...encodeKey(next).filter((_, i, all) => keepKeyField(all, i)),
      ]);
      if (change.expiresAt !== undefined) {
        commands.push(
          change.expiresAt > 0
            ? ['EXPIREAT', recordKey, String(change.expiresAt + EXPIRED_RECORD_RETENTION_SECONDS)]
            : ['PERSIST', recordKey],
        );
      }
    }
    for (const { expected, keyIds } of batch.deleteAccounts) {
      // The account record first: from then on none of its keys verifies.
      commands.push(['DEL', this.accountKey(expected.name)]);
      commands.push(['SREM', this.accountsKey, expected.name]);
      const ids = new Set([
        ...keyIds,
        ...(await conn.smembers(this.accountKeysKey(expected.name))),
      ]);
      for (const id of ids) commands.push(['DEL', this.keyKey(id)]);
      commands.push(['DEL', this.accountKeysKey(expected.name)]);
    }
    for (const { next } of batch.updateAccounts)
      commands.push(['HSET', this.accountKey(next.name), ...encodeAccount(next)]);
    // Index entries before records: on a Cluster an interrupted apply leaves at worst an index
    // entry without its record, which lists skip and the next apply completes; never a record
    // that no list (and so no prune) can find.
    for (const account of batch.createAccounts) {
      commands.push(['SADD', this.accountsKey, account.name]);
      commands.push(
        cluster
          ? [
              CLUSTER_CREATE,
              `service account "${account.name}"`,
              this.accountKey(account.name),
              ...encodeAccount(account),
            ]
          : ['HSET', this.accountKey(account.name), ...encodeAccount(account)],
      );
    }
    for (const key of batch.createKeys) {
      const recordKey = this.keyKey(key.id);
      commands.push(['SADD', this.accountKeysKey(key.account), key.id]);
      commands.push(
        cluster
          ? [CLUSTER_CREATE, `key ${key.id}`, recordKey, ...encodeKey(key)]
          : ['HSET', recordKey, ...encodeKey(key)],
      );
      if (key.expiresAt > 0)
        commands.push([
          'EXPIREAT',
          recordKey,
          String(key.expiresAt + EXPIRED_RECORD_RETENTION_SECONDS),
        ]);
    }
    return commands;
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

  addKeyUses(uses: ReadonlyArray<{ id: string; count: number }>): Promise<void> {
    return guard(async () => {
      // As touchKeys: one script per key (keys live on different slots in a cluster), sent
      // together in one pipeline per node by auto-pipelining: one round trip per flush.
      await Promise.all(
        uses
          .filter(({ count }) => Number.isSafeInteger(count) && count > 0)
          .map(({ id, count }) => this.scripts.kgAddKeyUses(this.keyKey(id), String(count))),
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

/** Cluster steps of an apply that run as single-key scripts, not as plain commands. */
const CLUSTER_CAS_KEY = 'keygate:cas-key';
const CLUSTER_CREATE = 'keygate:create';

/** A batch key change as the field/value pairs it writes (encoded as encodeKey writes them). */
function changedKeyFields(change: BatchKeyChange): string[] {
  const fields: string[] = [];
  if (change.description !== undefined) fields.push('description', change.description);
  if (change.scopes !== undefined)
    fields.push('scopes', change.scopes === null ? '' : JSON.stringify(change.scopes));
  if (change.expiresAt !== undefined) fields.push('expires_at', String(change.expiresAt));
  if (change.revokedAt !== undefined) fields.push('revoked_at', String(change.revokedAt));
  return fields;
}

/**
 * Which field/value pairs of an encoded key an update writes: all but last_used_at, which has
 * its own monotonic path (a batch must never lower it).
 */
function keepKeyField(all: string[], index: number): boolean {
  const field = index % 2 === 0 ? all[index] : all[index - 1];
  return field !== 'last_used_at';
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
