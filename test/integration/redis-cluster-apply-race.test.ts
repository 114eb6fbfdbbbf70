import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { AccountsBatch } from '../../src/store/accounts-batch.js';
import { RedisKeyStore } from '../../src/store/redis/redis-key-store.js';
import { testConfig } from '../helpers/gateway.js';
import { aKey, anAccount } from '../helpers/key-store-contract.js';
import { ClusterTopology } from '../helpers/redis-topologies.js';

/**
 * On a Cluster no transaction spans an apply's records, so the store checks them and then
 * writes them one by one. A write of the whole key record there (HSET of every field from the
 * plan's read) undid whatever landed in between: a `keys revoke` of a leaked key, answered
 * "revoked", came back un-revoked. Each key write must be a compare-and-set of its own.
 * The concurrent writer runs, for real, right after the store's check (the race window).
 */
let topology: ClusterTopology;
beforeAll(async () => {
  topology = await ClusterTopology.start();
});
afterAll(() => topology?.stop());

let run = 0;
async function clusterStore(): Promise<RedisKeyStore> {
  const config = testConfig('http://127.0.0.1:1', {
    store: {
      type: 'redis',
      redis: { cluster: { nodes: topology.urls }, keyPrefix: `kg:race${++run}:` },
    },
  });
  const store = RedisKeyStore.create(config.store.redis);
  await store.connect();
  onTestFinished(() => store.close());
  return store;
}

/** Runs `between` once, right after the store checked the batch and before it writes. */
function afterCheck(store: RedisKeyStore, between: () => Promise<void>): void {
  const target = store as unknown as { checkBatch: (...args: unknown[]) => Promise<void> };
  const check = target.checkBatch.bind(store);
  let done = false;
  target.checkBatch = async (...args: unknown[]) => {
    await check(...args);
    if (!done) {
      done = true;
      await between();
    }
  };
}

describe('Redis Cluster: apply against a concurrent writer', () => {
  it('a key revoked between the check and the write stays revoked (the batch is refused)', async () => {
    const store = await clusterStore();
    const account = anAccount({ name: 'ci', managed: true });
    await store.createAccount(account);
    const key = aKey({ account: 'ci' });
    await store.createKey(key);
    const batch: AccountsBatch = {
      createAccounts: [],
      updateAccounts: [],
      deleteAccounts: [],
      createKeys: [],
      updateKeys: [{ expected: key, change: { description: 'renamed in git' } }],
    };
    afterCheck(store, async () => {
      await store.updateKey(key.id, key.generation, { revokedAt: 1_700_000_500 });
    });
    const err = await store.applyAccounts(batch).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'conflict' });
    const stored = await store.getKey(key.id);
    expect(stored?.revokedAt).toBe(1_700_000_500);
    expect(stored?.description).toBe(key.description);
  });

  it('a key id created by someone else between the check and the write is not overwritten', async () => {
    const store = await clusterStore();
    await store.createAccount(anAccount({ name: 'a', managed: true }));
    await store.createAccount(anAccount({ name: 'b', managed: true }));
    const theirs = aKey({ account: 'b', description: 'theirs' });
    const mine = { ...theirs, account: 'a', description: 'mine' };
    afterCheck(store, async () => {
      await store.createKey(theirs);
    });
    const err = await store
      .applyAccounts({
        createAccounts: [],
        updateAccounts: [],
        deleteAccounts: [],
        createKeys: [mine],
        updateKeys: [],
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toMatchObject({ code: 'conflict' });
    expect(await store.getKey(theirs.id)).toMatchObject({ account: 'b', description: 'theirs' });
  });

  it('without a concurrent writer the same batches apply, PERSIST included', async () => {
    const store = await clusterStore();
    await store.createAccount(anAccount({ name: 'ci', managed: true }));
    const key = aKey({ account: 'ci', expiresAt: 4_000_000_000 });
    await store.createKey(key);
    const fresh = aKey({ account: 'ci' });
    await store.applyAccounts({
      createAccounts: [anAccount({ name: 'new', managed: true })],
      updateAccounts: [],
      deleteAccounts: [],
      createKeys: [fresh],
      updateKeys: [{ expected: key, change: { description: 'x', expiresAt: 0, scopes: ['read'] } }],
    });
    expect(await store.getKey(key.id)).toEqual({
      ...key,
      description: 'x',
      expiresAt: 0,
      scopes: ['read'],
      generation: key.generation + 1,
    });
    expect(await store.getKey(fresh.id)).toEqual(fresh);
    expect(await store.getAccount('new')).toMatchObject({ name: 'new', managed: true });
  });
});
