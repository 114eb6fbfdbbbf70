import { afterAll, beforeAll, describe } from 'vitest';
import type { KeyStore } from '../../src/store/key-store.js';
import { RedisKeyStore } from '../../src/store/redis/redis-key-store.js';
import { testConfig } from '../helpers/gateway.js';
import { describeKeyStoreContract } from '../helpers/key-store-contract.js';
import { ClusterTopology, SentinelTopology } from '../helpers/redis-topologies.js';

/** Each test gets its own key prefix, so tests share a topology without seeing each other's data. */
let run = 0;
async function storeFor(redis: Record<string, unknown>, prefix: string): Promise<RedisKeyStore> {
  const config = testConfig('http://127.0.0.1:1', {
    store: { type: 'redis', redis: { ...redis, keyPrefix: prefix } },
  });
  const store = RedisKeyStore.create(config.store.redis);
  await store.connect();
  return store;
}

function harness(redis: () => Record<string, unknown>) {
  return async () => {
    const prefix = `kg:t${++run}:`;
    const opened: KeyStore[] = [await storeFor(redis(), prefix)];
    return {
      store: opened[0] as KeyStore,
      reopen: async () => {
        const other = await storeFor(redis(), prefix);
        opened.push(other);
        return other;
      },
      cleanup: async () => {
        for (const s of opened) await s.close();
      },
    };
  };
}

describe('Redis Sentinel', () => {
  let topology: SentinelTopology;
  beforeAll(async () => {
    topology = await SentinelTopology.start();
  });
  afterAll(() => topology?.stop());
  describeKeyStoreContract(
    'redis via sentinel',
    harness(() => ({
      sentinel: {
        name: 'keygate-master',
        sentinels: [{ host: '127.0.0.1', port: topology.sentinelPort }],
      },
    })),
  );
});

describe('Redis Cluster', () => {
  let topology: ClusterTopology;
  beforeAll(async () => {
    topology = await ClusterTopology.start();
  });
  afterAll(() => topology?.stop());
  describeKeyStoreContract(
    'redis cluster (3 masters)',
    harness(() => ({ cluster: { nodes: topology.urls } })),
  );
});
