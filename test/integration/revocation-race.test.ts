import { afterAll, beforeAll, expect, it } from 'vitest';
import type { AccountRecord, KeyStore } from '../../src/store/key-store.js';
import { openStore } from '../../src/store/open-store.js';
import { FastHasher } from '../helpers/fast-hasher.js';
import { type Gateway, startGateway, TEST_ACTOR, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

/**
 * DESIGN §12.4 across replicas: A changes a key or an account, B learns it over Redis pub/sub
 * while B has a verification in flight that read the store before the change. B's argon2 (a
 * fast stand-in that can be held) and B's account reads can be paused, so the interleaving is
 * exact; the store, the pub/sub channel and the sockets are real.
 */

let redis: RedisServer;
let upstream: RecordingUpstream;
let a: Gateway;
let b: Gateway;
const bHasher = new FastHasher();
/** Set to pause B's next account read after it has read the record; cleared when it does. */
let pauseNextAccountRead = false;
let accountReadHeld = false;
let releaseAccountRead: () => void = () => {};

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  const config = testConfig(upstream.url, {
    store: { type: 'redis', redis: { url: redis.url } },
    keys: { cacheTtl: '60s' },
  });
  a = await startGateway({ config, hasher: new FastHasher() });
  // B's store is the real Redis store; only getAccount can be paused, after it has read.
  const { store: real, bus } = await openStore(config.store, { requireConnection: true });
  const pausable: KeyStore = Object.create(real) as KeyStore;
  pausable.getAccount = async (name: string): Promise<AccountRecord | null> => {
    const account = await real.getAccount(name);
    if (pauseNextAccountRead) {
      pauseNextAccountRead = false;
      accountReadHeld = true;
      await new Promise<void>((resolve) => {
        releaseAccountRead = resolve;
      });
    }
    return account;
  };
  b = await startGateway({ config, hasher: bHasher, store: pausable, bus });
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await upstream?.close();
  await redis?.destroy();
});

/** How many times B counted a key-cache event (misses, invalidations from pub/sub, ...). */
async function bEvents(event: string): Promise<number> {
  const text = await b.app.metrics.render();
  const line = new RegExp(`keygate_key_cache_events_total\\{event="${event}"\\} (\\d+)`);
  return Number(line.exec(text)?.[1] ?? 0);
}

/** Resolves once B has counted `count` events of this kind. */
async function bEventsReach(event: string, count: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while ((await bEvents(event)) < count) {
    if (Date.now() > deadline) throw new Error(`B never counted ${count} ${event} events`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolves once B has applied `count` invalidations received over pub/sub. */
const bInvalidations = (count: number) => bEventsReach('invalidation', count);

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 2));
  }
}

const viaB = (key: string) => send(b.url, '/model/allocation', { headers: { 'x-api-key': key } });

let invalidations = 0;

it('a key revoked through A while B verifies it: the request that joins afterwards and the one in flight are both refused', async () => {
  const { key, id } = await a.issue('race-revoke', 'reader');
  let open!: () => void;
  bHasher.gate = new Promise((r) => {
    open = r;
  });
  const calls = bHasher.verifyCalls;
  const first = viaB(key); // B has read the active record; argon2 is held
  await until(() => bHasher.verifyCalls === calls + 1);
  await a.app.keys.revokeKey(TEST_ACTOR, 'race-revoke', id);
  await bInvalidations(++invalidations);
  const misses = await bEvents('miss');
  const second = viaB(key); // starts after B learnt of the revoke
  await bEventsReach('miss', misses + 1); // B is verifying it (or has joined the first)
  bHasher.gate = undefined;
  open();
  const [r1, r2] = await Promise.all([first, second]);
  expect([r1.json.error, r2.json.error]).toEqual(['revoked_key', 'revoked_key']);
  expect(upstream.requests.filter((r) => r.headers['x-keygate-key-id'] === id)).toHaveLength(0);
});

it('an account re-enabled through A while B reads it as disabled: B lets the key in afterwards', async () => {
  const { key } = await a.issue('race-enable', 'reader');
  await a.app.keys.updateAccount(TEST_ACTOR, 'race-enable', { disabled: true });
  await bInvalidations(++invalidations);
  pauseNextAccountRead = true;
  accountReadHeld = false;
  const first = viaB(key); // B reads "disabled", then waits
  await until(() => accountReadHeld);
  await a.app.keys.updateAccount(TEST_ACTOR, 'race-enable', { disabled: false });
  await bInvalidations(++invalidations);
  releaseAccountRead();
  expect((await first).json.error).toBe('account_disabled'); // started before the re-enable
  expect((await viaB(key)).status).toBe(200); // the stale refusal was not kept
});

it('an account disabled through A while B reads it as enabled: nobody on B is let in', async () => {
  const { key } = await a.issue('race-disable', 'reader');
  pauseNextAccountRead = true;
  accountReadHeld = false;
  const first = viaB(key); // B reads "enabled", then waits
  await until(() => accountReadHeld);
  await a.app.keys.updateAccount(TEST_ACTOR, 'race-disable', { disabled: true });
  await bInvalidations(++invalidations);
  const misses = await bEvents('miss');
  const second = viaB(key);
  await bEventsReach('miss', misses + 1); // B is verifying it (or has joined the first)
  releaseAccountRead();
  const [r1, r2] = await Promise.all([first, second]);
  expect([r1.json.error, r2.json.error]).toEqual(['account_disabled', 'account_disabled']);
});
