import { beforeEach, describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import { generateKey } from '../../../src/keys/key-format.js';
import { KeyService } from '../../../src/keys/key-service.js';
import { type CacheEvent, KeyVerifier, type VerifierOptions } from '../../../src/keys/verifier.js';
import { VerifyPool } from '../../../src/keys/verify-pool.js';
import { MemoryKeyStore } from '../../../src/store/memory-key-store.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { FastHasher } from '../../helpers/fast-hasher.js';

const ACTOR = { kind: 'cli', user: 'test' } as const;
/** Where the unit tests' requests come from, for the per-address failure budget. */
const CALLER = { clientAddress: '192.0.2.1' };
const ROLES = { admin: ['read', 'write', 'admin'], member: ['read', 'write'], reader: ['read'] };

let store: MemoryKeyStore;
let hasher: FastHasher;
let clock: FakeClock;
let verifier: KeyVerifier;
let service: KeyService;
let events: CacheEvent[];

beforeEach(async () => {
  store = new MemoryKeyStore();
  hasher = new FastHasher();
  clock = new FakeClock();
  events = [];
  const pool = new VerifyPool(2, 4);
  verifier = verifierWith(pool, {
    observer: { cacheEvent: (e) => events.push(e), verifyDuration: () => {} },
  });
  service = new KeyService({
    store,
    hasher,
    pool,
    clock,
    prefix: 'kg',
    roles: ROLES,
    invalidate: async (event) => verifier.apply(event),
    audit: () => {},
  });
  await service.createAccount(ACTOR, { name: 'ci', role: 'member' });
});

/** A verifier on this file's store, hasher and clock; tests vary the pool and the options. */
function verifierWith(pool: VerifyPool, options: Partial<VerifierOptions> = {}): KeyVerifier {
  return new KeyVerifier({
    store,
    hasher,
    pool,
    clock,
    prefix: 'kg',
    roles: ROLES,
    cacheTtlMs: 30_000,
    negativeTtlMs: 10_000,
    maxEntries: 100,
    ...options,
  });
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(KeygateError);
    return (err as KeygateError).code;
  }
}

describe('KeyVerifier', () => {
  it('verifies once, then serves from the cache without store or argon2', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const principal = await verifier.verify(key, CALLER);
    expect(principal).toMatchObject({ keyId: id, account: 'ci', role: 'member' });
    expect([...principal.scopes]).toEqual(['read', 'write']);
    const reads = store.reads;
    await verifier.verify(key, CALLER);
    await verifier.verify(key, CALLER);
    expect(store.reads).toBe(reads);
    expect(hasher.verifyCalls).toBe(1);
    expect(events).toEqual(['miss', 'fill', 'hit', 'hit']);
  });

  it('malformed keys cost neither a store read nor argon2', async () => {
    expect(await codeOf(verifier.verify('kg_nope', CALLER))).toBe('invalid_key');
    expect(store.reads).toBe(0);
    expect(hasher.verifyCalls).toBe(0);
  });

  it('unknown ids cost one store read and no argon2; repeats cost nothing', async () => {
    const unknown = generateKey('kg').full;
    expect(await codeOf(verifier.verify(unknown, CALLER))).toBe('invalid_key');
    expect(await codeOf(verifier.verify(unknown, CALLER))).toBe('invalid_key');
    expect(store.reads).toBe(1);
    expect(hasher.verifyCalls).toBe(0);
  });

  it('a wrong secret costs one argon2, then is remembered for the negative TTL', async () => {
    const { id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const other = generateKey('kg');
    // Re-key the stored record to the other key's id so the presented key has a real id.
    const record = store.keys.get(id)!;
    store.keys.set(other.id, { ...record, id: other.id });
    expect(await codeOf(verifier.verify(other.full, CALLER))).toBe('invalid_key');
    expect(await codeOf(verifier.verify(other.full, CALLER))).toBe('invalid_key');
    expect(hasher.verifyCalls).toBe(1);
    clock.advance(10_001);
    expect(await codeOf(verifier.verify(other.full, CALLER))).toBe('invalid_key');
    expect(hasher.verifyCalls).toBe(2);
  });

  it('concurrent misses for the same key share one verification (single flight)', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    let open!: () => void;
    hasher.gate = new Promise((r) => {
      open = r;
    });
    const all = Promise.all(Array.from({ length: 20 }, () => verifier.verify(key, CALLER)));
    await new Promise((r) => setTimeout(r, 5));
    open();
    const principals = await all;
    expect(new Set(principals).size).toBe(1);
    expect(hasher.verifyCalls).toBe(1);
    expect(store.reads).toBe(1);
  });

  it('expiry: refused after expires_at, even from the cache', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', {
      description: 'd',
      expiresAt: clock.seconds + 60,
    });
    await verifier.verify(key, CALLER);
    clock.advance(59_000);
    await expect(verifier.verify(key, CALLER)).resolves.toBeDefined();
    clock.advance(1_000);
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('expired_key');
  });

  it('the cache TTL is bounded: a store change is seen after cacheTtl at the latest', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await verifier.verify(key, CALLER);
    store.keys.set(id, { ...store.keys.get(id)!, revokedAt: clock.seconds });
    await expect(verifier.verify(key, CALLER)).resolves.toBeDefined();
    clock.advance(30_001);
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('revoked_key');
  });

  it('invalidateKey evicts at once', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await verifier.verify(key, CALLER);
    store.keys.set(id, { ...store.keys.get(id)!, revokedAt: clock.seconds });
    verifier.invalidateKey(id);
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('revoked_key');
  });

  it('a fill that raced an invalidation is discarded and verified again from the store', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    let open!: () => void;
    hasher.gate = new Promise((r) => {
      open = r;
    });
    const pending = verifier.verify(key, CALLER);
    await new Promise((r) => setTimeout(r, 5));
    verifier.invalidateKey(id); // e.g. a revocation landed while argon2 ran
    open();
    await pending;
    expect(events).toEqual(['miss', 'fill_discarded', 'fill']);
    expect(store.reads).toBe(2); // read again after the invalidation...
    expect(hasher.verifyCalls).toBe(1); // ...but argon2 ran once: the key is known-good
    hasher.gate = undefined;
  });

  it('a disabled account is refused without argon2, and remembered until re-enabled', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await service.updateAccount(ACTOR, 'ci', { disabled: true });
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('account_disabled');
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('account_disabled');
    expect(hasher.verifyCalls).toBe(0);
    expect(store.reads).toBe(1);
    await service.updateAccount(ACTOR, 'ci', { disabled: false }); // publishes an invalidation
    await expect(verifier.verify(key, CALLER)).resolves.toMatchObject({ account: 'ci' });
  });

  it('disabled accounts and deleted accounts are refused', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    store.accounts.set('ci', { ...store.accounts.get('ci')!, disabled: true });
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('account_disabled');
    store.accounts.delete('ci'); // behind the service's back: no invalidation, so wait out the refusal
    clock.advance(10_001);
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('invalid_key');
  });

  it('a key narrows its role, and a role downgrade narrows the key', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd', scopes: ['write'] });
    expect([...(await verifier.verify(key, CALLER)).scopes]).toEqual(['write']);
    store.accounts.set('ci', { ...store.accounts.get('ci')!, role: 'reader' });
    verifier.invalidateAccount('ci');
    expect([...(await verifier.verify(key, CALLER)).scopes]).toEqual([]);
  });

  it('sheds at once, without a store read, while the argon2 pool is saturated', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const pool = new VerifyPool(1, 0);
    const busy = verifierWith(pool);
    let release!: () => void;
    const running = pool.run(
      () =>
        new Promise<void>((r) => {
          release = r;
        }),
    );
    const reads = store.reads;
    expect(await codeOf(busy.verify(key, CALLER))).toBe('verify_overloaded');
    expect(store.reads).toBe(reads);
    expect(pool.shed).toBe(1);
    release();
    await running;
    await expect(busy.verify(key, CALLER)).resolves.toBeDefined();
  });

  it('store failure on a miss is store_unavailable, never a pass', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    store.down = true;
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('store_unavailable');
    store.down = false;
    await expect(verifier.verify(key, CALLER)).resolves.toBeDefined();
  });

  it('a hasher failure refuses the request (internal_error), never allows it', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    hasher.verify = async () => {
      throw new Error('corrupt PHC string');
    };
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('internal_error');
  });

  it('the cache is bounded by maxEntries', async () => {
    const small = verifierWith(new VerifyPool(2, 4), { maxEntries: 3 });
    const keys = await Promise.all(
      Array.from({ length: 5 }, () => service.createKey(ACTOR, 'ci', { description: 'd' })),
    );
    for (const k of keys) await small.verify(k.key, CALLER);
    const calls = hasher.verifyCalls;
    await small.verify(keys[0]!.key, CALLER); // evicted: verified again
    expect(hasher.verifyCalls).toBe(calls + 1);
    await small.verify(keys[4]!.key, CALLER); // recent: still cached
    expect(hasher.verifyCalls).toBe(calls + 1);
  });
});
