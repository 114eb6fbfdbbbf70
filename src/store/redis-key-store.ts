import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/schema.js';
import { KeygateError } from '../errors.js';
import { redactUrl } from '../shared/redact-url.js';
import { RedisInvalidationBus } from './invalidation-bus.js';
import type { AccountChange, AccountRecord, KeyChange, KeyRecord, KeyStore } from './key-store.js';
import { alreadyRotated, missingAccount, missingKey, staleKey } from './record-rules.js';

type RedisConfig = Config['store']['redis'];
type Client = Redis | Cluster;

/** How long a key's record outlives its expiry, so "expired" can still be told from "unknown". */
const EXPIRED_RECORD_RETENTION_SECONDS = 30 * 86_400;

// Creates a hash only if it does not exist yet: one round trip, atomic, single key (Cluster-safe).
const CREATE_HASH = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`;

// Compare-and-set on a key record. ARGV: expected generation, EXPIREAT time (0 = leave),
// "1" to refuse a key already replaced by rotation, then field/value pairs.
// Returns the new generation, -1 missing, -2 stale generation, -3 already rotated.
const UPDATE_KEY = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local gen = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if ARGV[3] == '1' and (redis.call('HGET', KEYS[1], 'replaced_by') or '') ~= '' then return -3 end
if gen ~= tonumber(ARGV[1]) then return -2 end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
redis.call('HSET', KEYS[1], 'generation', gen + 1)
local at = tonumber(ARGV[2])
if at > 0 then redis.call('EXPIREAT', KEYS[1], at) end
return gen + 1`;

// Raises last_used_at, never lowers it, and never recreates a deleted record.
const TOUCH_KEY = `
local current = redis.call('HGET', KEYS[1], 'last_used_at')
if not current then return 0 end
if tonumber(ARGV[1]) > tonumber(current) then
  redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1])
  return 1
end
return 0`;

// Updates fields of an existing hash only.
const UPDATE_HASH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`;

interface ClientWithScripts {
  kgCreateHash(key: string, ...fieldsAndValues: string[]): Promise<number>;
  kgUpdateKey(key: string, ...args: string[]): Promise<number>;
  kgTouchKey(key: string, lastUsedAt: string): Promise<number>;
  kgUpdateHash(key: string, ...fieldsAndValues: string[]): Promise<number>;
}

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

  /** The most recent connection error, for messages and readiness; cleared on ready. */
  lastError: Error | undefined;

  constructor(
    private readonly client: Client,
    private readonly prefix: string,
    private readonly description: string,
    onError?: (err: Error) => void,
  ) {
    client.defineCommand('kgCreateHash', { numberOfKeys: 1, lua: CREATE_HASH });
    client.defineCommand('kgUpdateKey', { numberOfKeys: 1, lua: UPDATE_KEY });
    client.defineCommand('kgTouchKey', { numberOfKeys: 1, lua: TOUCH_KEY });
    client.defineCommand('kgUpdateHash', { numberOfKeys: 1, lua: UPDATE_HASH });
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
    const client = this.client;
    // A subscriber must wait for Redis rather than fail fast: offline queue on, no command timeout.
    const subscriberOptions = {
      enableOfflineQueue: true,
      lazyConnect: false,
      commandTimeout: undefined,
    };
    return new RedisInvalidationBus(
      client,
      () =>
        client instanceof Cluster
          ? client.duplicate(undefined, { enableOfflineQueue: true, lazyConnect: false })
          : client.duplicate(subscriberOptions),
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
        {
          cause: err,
        },
      );
    }
  }

  get status(): string {
    return this.client.status;
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
    if (result === -1) throw missingKey(id);
    if (result === -2) throw staleKey(id);
    if (result === -3) throw alreadyRotated(id);
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
    return guard(async () => {
      if (this.client instanceof Cluster) {
        await Promise.all(this.client.nodes('master').map((node) => node.ping()));
      } else {
        await this.client.ping();
      }
    });
  }

  async close(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  private get scripts(): ClientWithScripts {
    return this.client as unknown as ClientWithScripts;
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

/** Where the store points, for messages: never the password. */
function describeTarget(config: RedisConfig): string {
  if (config.cluster) return `cluster ${config.cluster.nodes.map(redactUrl).join(', ')}`;
  if (config.sentinel) {
    const s = config.sentinel;
    return `sentinel master "${s.name}" via ${s.sentinels.map((n) => `${n.host}:${n.port}`).join(', ')}`;
  }
  return redactUrl(config.url ?? 'redis://127.0.0.1:6379/0');
}

function createClient(config: RedisConfig): Client {
  const common: RedisOptions = {
    lazyConnect: true,
    enableAutoPipelining: true,
    // Fail fast instead of queueing while disconnected: an outage must become a quick 503.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: config.commandTimeout,
    connectTimeout: config.connectTimeout,
    // Capped at 1 s so a returning Redis is seen (and /readyz turns green) within a second.
    retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 1000),
  };
  if (config.cluster) {
    const nodes = config.cluster.nodes.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port || 6379) };
    });
    return new Cluster(nodes, {
      lazyConnect: true,
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 1000),
      redisOptions: {
        ...common,
        ...(config.cluster.password ? { password: config.cluster.password } : {}),
        ...(config.cluster.tls ? { tls: {} } : {}),
      },
    });
  }
  if (config.sentinel) {
    const s = config.sentinel;
    return new Redis({
      ...common,
      name: s.name,
      sentinels: s.sentinels,
      db: s.db,
      ...(s.password ? { password: s.password } : {}),
      ...(s.sentinelPassword ? { sentinelPassword: s.sentinelPassword } : {}),
      ...(s.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    });
  }
  return new Redis(config.url ?? 'redis://127.0.0.1:6379/0', common);
}

function encodeAccount(a: AccountRecord): string[] {
  // biome-ignore format: field/value pairs read best one pair per line
  return [
    'name', a.name,
    'role', a.role,
    'description', a.description,
    'disabled', a.disabled ? '1' : '0',
    'created_at', String(a.createdAt),
    'updated_at', String(a.updatedAt),
  ];
}

function decodeAccount(h: Record<string, string>): AccountRecord | null {
  if (h.name === undefined || h.role === undefined) return null;
  return {
    name: h.name,
    role: h.role,
    description: h.description ?? '',
    disabled: h.disabled === '1',
    createdAt: Number(h.created_at ?? 0),
    updatedAt: Number(h.updated_at ?? 0),
  };
}

function encodeKey(k: KeyRecord): string[] {
  // biome-ignore format: field/value pairs read best one pair per line
  return [
    'id', k.id,
    'account', k.account,
    'hash', k.hash,
    'description', k.description,
    'scopes', k.scopes === null ? '' : JSON.stringify(k.scopes),
    'created_at', String(k.createdAt),
    'expires_at', String(k.expiresAt),
    'revoked_at', String(k.revokedAt),
    'last_used_at', String(k.lastUsedAt),
    'replaced_by', k.replacedBy,
    'generation', String(k.generation),
  ];
}

function decodeKey(h: Record<string, string>): KeyRecord | null {
  if (h.id === undefined || h.account === undefined || h.hash === undefined) return null;
  return {
    id: h.id,
    account: h.account,
    hash: h.hash,
    description: h.description ?? '',
    scopes: h.scopes ? (JSON.parse(h.scopes) as string[]) : null,
    createdAt: Number(h.created_at ?? 0),
    expiresAt: Number(h.expires_at ?? 0),
    revokedAt: Number(h.revoked_at ?? 0),
    lastUsedAt: Number(h.last_used_at ?? 0),
    replacedBy: h.replaced_by ?? '',
    generation: Number(h.generation ?? 0),
  };
}
