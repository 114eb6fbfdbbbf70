import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { FileKeyStore, StoreLockedError } from '../../src/store/file-key-store.js';
import type { KeyStore } from '../../src/store/key-store.js';
import { RedisKeyStore } from '../../src/store/redis/redis-key-store.js';
import { testConfig } from '../helpers/gateway.js';
import { aKey, anAccount, describeKeyStoreContract } from '../helpers/key-store-contract.js';
import { MemoryKeyStore } from '../helpers/memory-key-store.js';
import { RedisServer } from '../helpers/redis-server.js';

// One redis-server for the whole file (suite-wide, in beforeAll/afterAll): starting one per
// test would cost more than the tests. Tests are kept apart by key prefix, never by database
// number: Redis has only 16 databases, so a counter over them wraps and two tests share one.
let redis: RedisServer;
let run = 0;
beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => {
  await redis?.destroy();
});

async function redisStore(url: string, keyPrefix: string): Promise<RedisKeyStore> {
  const config = testConfig('http://127.0.0.1:1', {
    store: { type: 'redis', redis: { url, keyPrefix } },
  });
  const store = RedisKeyStore.create(config.store.redis);
  await store.connect();
  return store;
}

describeKeyStoreContract('redis', async () => {
  // Each test gets a prefix no other test uses, so it starts from an empty store.
  const prefix = `kg:c${++run}:`;
  const store = await redisStore(redis.url, prefix);
  const opened: KeyStore[] = [store];
  return {
    store,
    reopen: async () => {
      const other = await redisStore(redis.url, prefix);
      opened.push(other);
      return other;
    },
    cleanup: async () => {
      for (const s of opened) await s.close();
    },
  };
});

describeKeyStoreContract('file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-store-'));
  const path = join(dir, 'keygate.json');
  let store: KeyStore = await FileKeyStore.open(path);
  return {
    store,
    reopen: async () => {
      // A file store is single-instance: "reopen" is a restart, so the first handle closes.
      await store.close();
      store = await FileKeyStore.open(path);
      return store;
    },
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describeKeyStoreContract('memory', async () => {
  const store = new MemoryKeyStore();
  return { store, reopen: async () => store, cleanup: async () => {} };
});

describe('file store specifics', () => {
  it('refuses a second opener while the first holds the lock, and frees it on close', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-lock-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'keygate.json');
    const first = await FileKeyStore.open(path);
    await expect(FileKeyStore.open(path)).rejects.toBeInstanceOf(StoreLockedError);
    await first.close();
    const second = await FileKeyStore.open(path);
    await second.close();
  });

  it('a failed write changes neither the file nor the in-memory state, and leaves no temp file', async () => {
    const { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync } = await import('node:fs');
    const dir = mkdtempSync(join(tmpdir(), 'keygate-fail-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'keygate.json');
    const store = await FileKeyStore.open(path);
    onTestFinished(() => store.close());
    await store.createAccount(anAccount());
    const before = readFileSync(path, 'utf8');
    // A directory where the file should be: the atomic rename fails (whatever the user's privileges).
    renameSync(path, `${path}.saved`);
    mkdirSync(path);
    await expect(store.createKey(aKey())).rejects.toMatchObject({ code: 'store_unavailable' });
    expect(await store.listKeys('ci')).toEqual([]);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    rmdirSync(path);
    renameSync(`${path}.saved`, path);
    expect(readFileSync(path, 'utf8')).toBe(before);
  });
});

describe('redis store specifics', () => {
  it('a key with an expiry gets a Redis TTL past it (records do not live forever)', async () => {
    const store = await redisStore(redis.url, 'kg:ttl:');
    onTestFinished(() => store.close());
    await store.createAccount(anAccount({ name: 'ttl' }));
    const key = aKey({ account: 'ttl', expiresAt: Math.floor(Date.now() / 1000) + 3600 });
    await store.createKey(key);
    // Read with a client of the test's own, not the store's private one.
    const client = new Redis(redis.url);
    onTestFinished(() => client.disconnect());
    expect(await client.ttl(`kg:ttl:key:{${key.id}}`)).toBeGreaterThan(3600);
  });

  it('stores with different key prefixes on one database do not see each other', async () => {
    const a = await redisStore(redis.url, 'kg:iso-a:');
    onTestFinished(() => a.close());
    const b = await redisStore(redis.url, 'kg:iso-b:');
    onTestFinished(() => b.close());
    await a.createAccount(anAccount({ name: 'shared-name' }));
    const key = aKey({ account: 'shared-name' });
    await a.createKey(key);
    expect(await b.getAccount('shared-name')).toBeNull();
    expect(await b.getKey(key.id)).toBeNull();
    expect(await b.listAccounts()).toEqual([]);
    // The same name is free in b: creating it is not a conflict.
    await b.createAccount(anAccount({ name: 'shared-name', role: 'admin' }));
    expect((await a.getAccount('shared-name'))?.role).toBe('reader');
    expect((await b.getAccount('shared-name'))?.role).toBe('admin');
  });

  it('fails fast with store_unavailable when Redis is down, then recovers', async () => {
    const own = await RedisServer.start();
    onTestFinished(() => own.destroy());
    const store = await redisStore(own.url, 'kg:');
    onTestFinished(() => store.close());
    await own.stop();
    const started = performance.now();
    await expect(store.getKey('abcdefghijkl')).rejects.toMatchObject({ code: 'store_unavailable' });
    expect(performance.now() - started).toBeLessThan(1500);
    await own.start();
    const deadline = Date.now() + 10_000;
    let ok = false;
    while (!ok && Date.now() < deadline) {
      ok = await store.ping().then(
        () => true,
        () => false,
      );
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ok).toBe(true);
  });
});
