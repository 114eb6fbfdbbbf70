import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyStore, StoreLockedError } from '../../src/store/file-key-store.js';
import type { KeyStore } from '../../src/store/key-store.js';
import { RedisKeyStore } from '../../src/store/redis/redis-key-store.js';
import { testConfig } from '../helpers/gateway.js';
import { aKey, anAccount, describeKeyStoreContract } from '../helpers/key-store-contract.js';
import { MemoryKeyStore } from '../helpers/memory-key-store.js';
import { RedisServer } from '../helpers/redis-server.js';

let redis: RedisServer;
let db = 0;
beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => {
  await redis?.destroy();
});

async function redisStore(url: string): Promise<RedisKeyStore> {
  const config = testConfig('http://127.0.0.1:1', { store: { type: 'redis', redis: { url } } });
  const store = RedisKeyStore.create(config.store.redis);
  await store.connect();
  return store;
}

describeKeyStoreContract('redis', async () => {
  // Each test gets its own logical database, so tests cannot see each other's data.
  const url = `${redis.url.replace(/\/0$/, '')}/${++db % 16}`;
  const store = await redisStore(url);
  await (store as unknown as { client: { flushdb(): Promise<unknown> } }).client.flushdb();
  const opened: KeyStore[] = [store];
  return {
    store,
    reopen: async () => {
      const other = await redisStore(url);
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
    const path = join(dir, 'keygate.json');
    const first = await FileKeyStore.open(path);
    await expect(FileKeyStore.open(path)).rejects.toBeInstanceOf(StoreLockedError);
    await first.close();
    const second = await FileKeyStore.open(path);
    await second.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a failed write changes neither the file nor the in-memory state, and leaves no temp file', async () => {
    const { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync } = await import('node:fs');
    const dir = mkdtempSync(join(tmpdir(), 'keygate-fail-'));
    const path = join(dir, 'keygate.json');
    const store = await FileKeyStore.open(path);
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
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('redis store specifics', () => {
  it('a key with an expiry gets a Redis TTL past it (records do not live forever)', async () => {
    const store = await redisStore(`${redis.url.replace(/\/0$/, '')}/15`);
    await store.createAccount(anAccount({ name: 'ttl' }));
    const key = aKey({ account: 'ttl', expiresAt: Math.floor(Date.now() / 1000) + 3600 });
    await store.createKey(key);
    const client = (store as unknown as { client: { ttl(k: string): Promise<number> } }).client;
    const ttl = await client.ttl(`kg:key:{${key.id}}`);
    expect(ttl).toBeGreaterThan(3600);
    await store.close();
  });

  it('fails fast with store_unavailable when Redis is down, then recovers', async () => {
    const own = await RedisServer.start();
    const store = await redisStore(own.url);
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
    await store.close();
    await own.destroy();
  });
});
