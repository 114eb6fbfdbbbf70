import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import { generateKey, parseKey } from '../../../src/keys/key-format.js';
import { AttributedKeyRefusal } from '../../../src/keys/key-refusal.js';
import { KeyService } from '../../../src/keys/key-service.js';
import { type CacheEvent, KeyVerifier, type VerifierOptions } from '../../../src/keys/verifier.js';
import { VerifyPool } from '../../../src/keys/verify-pool.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { FastHasher } from '../../helpers/fast-hasher.js';
import { forgeKey } from '../../helpers/flood-worker.mjs';
import { MemoryKeyStore } from '../../helpers/memory-key-store.js';

const ACTOR = { kind: 'cli', user: 'test' } as const;
/** Where the unit tests' requests come from, for the per-address failure budget. */
const CALLER = { clientAddress: '192.0.2.1' };
const ROLES = { admin: ['read', 'write', 'admin'], member: ['read', 'write'], reader: ['read'] };

/**
 * The in-memory store, with hooks to stop time inside a verification: hold the next account
 * read after it has read the record (so a change can land between the read and its use), and
 * run a callback after every key read.
 */
class GatedStore extends MemoryKeyStore {
  accountReadHeld = false;
  afterKeyRead: (() => void) | undefined;
  private nextAccountHold: Promise<void> | undefined;

  /** The next getAccount reads the record, then waits until the returned function is called. */
  holdNextAccountRead(): () => void {
    const { promise, resolve } = deferred();
    this.nextAccountHold = promise;
    return resolve;
  }

  override async getKey(id: string) {
    const record = await super.getKey(id);
    this.afterKeyRead?.();
    return record;
  }

  override async getAccount(name: string) {
    const account = await super.getAccount(name);
    const hold = this.nextAccountHold;
    this.nextAccountHold = undefined;
    if (hold) {
      this.accountReadHeld = true;
      await hold;
    }
    return account;
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Lets pending promise callbacks run until `condition` holds (no wall-clock waits). */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await new Promise((r) => setImmediate(r));
  expect(condition()).toBe(true);
}

/** Holds every argon2 verification until the returned function is called. */
function holdArgon2(): () => void {
  const { promise, resolve } = deferred();
  hasher.gate = promise;
  return () => {
    hasher.gate = undefined;
    resolve();
  };
}

/** A well-formed key (valid checksum) for `id` with a secret of the caller's choosing. */
const forge = forgeKey;
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Distinct random secrets: every forged key is new to the caches. */
function forgeMany(id: string, count: number): string[] {
  return Array.from({ length: count }, () => forge(id, generateKey('kg').full.slice(16, 59)));
}

const secretArb = fc.string({ unit: fc.constantFrom(...ALPHABET), minLength: 43, maxLength: 43 });

let store: GatedStore;
let hasher: FastHasher;
let clock: FakeClock;
let verifier: KeyVerifier;
let service: KeyService;
let events: CacheEvent[];

beforeEach(async () => {
  store = new GatedStore();
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
    const seen: CacheEvent[] = [];
    const busy = verifierWith(pool, {
      observer: { cacheEvent: (e) => seen.push(e), verifyDuration: () => {} },
    });
    let release!: () => void;
    const running = pool.run(
      () =>
        new Promise<void>((r) => {
          release = r;
        }),
    );
    const reads = store.reads;
    expect(await codeOf(busy.verify(key, CALLER))).toBe('verify_overloaded');
    // Shed before any work: no store read, no argon2, nothing cached (the retry below is a miss).
    expect(store.reads).toBe(reads);
    expect(hasher.verifyCalls).toBe(0);
    expect(seen).toEqual(['miss']);
    release();
    await running;
    await expect(busy.verify(key, CALLER)).resolves.toBeDefined();
    expect(seen).toEqual(['miss', 'miss', 'fill']);
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

describe('forged keys cost no argon2 beyond a bounded budget (DESIGN §12.6)', () => {
  it('(a) forged keys for an unknown id: invalid_key, no argon2', async () => {
    const unknown = generateKey('kg').id;
    await fc.assert(
      fc.asyncProperty(secretArb, async (secret) => {
        expect(await codeOf(verifier.verify(forge(unknown, secret), CALLER))).toBe('invalid_key');
      }),
    );
    expect(hasher.verifyCalls).toBe(0);
  });

  it('(b) forged keys for a revoked id, and the real key: revoked_key, no argon2', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await service.revokeKey(ACTOR, 'ci', id);
    await fc.assert(
      fc.asyncProperty(secretArb, async (secret) => {
        expect(await codeOf(verifier.verify(forge(id, secret), CALLER))).toBe('revoked_key');
      }),
    );
    const burst = await Promise.all(
      forgeMany(id, 50).map((k) => codeOf(verifier.verify(k, CALLER))),
    );
    expect(new Set(burst)).toEqual(new Set(['revoked_key']));
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('revoked_key');
    expect(hasher.verifyCalls).toBe(0);
  });

  it('(c) forged keys for an expired id, and the real key: expired_key, no argon2', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', {
      description: 'd',
      expiresAt: clock.seconds + 60,
    });
    clock.advance(60_000);
    await fc.assert(
      fc.asyncProperty(secretArb, async (secret) => {
        expect(await codeOf(verifier.verify(forge(id, secret), CALLER))).toBe('expired_key');
      }),
    );
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('expired_key');
    expect(hasher.verifyCalls).toBe(0);
  });

  it('forged keys for a disabled or a deleted account: refused without argon2', async () => {
    const { id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await service.updateAccount(ACTOR, 'ci', { disabled: true });
    for (const k of forgeMany(id, 20))
      expect(await codeOf(verifier.verify(k, CALLER))).toBe('account_disabled');
    store.accounts.delete('ci'); // the record stays behind: a deleted account's key
    for (const k of forgeMany(id, 20))
      expect(await codeOf(verifier.verify(k, CALLER))).toBe('invalid_key');
    expect(hasher.verifyCalls).toBe(0);
  });

  it('(d) forged keys for an active id: argon2 runs at most perKeyId times per window; the rest are auth_throttled without a store read', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const codes: string[] = [];
    for (const k of forgeMany(id, 40)) codes.push(await codeOf(verifier.verify(k, CALLER)));
    expect(hasher.verifyCalls).toBe(10);
    expect(codes.slice(0, 10)).toEqual(Array(10).fill('invalid_key'));
    expect(codes.slice(10)).toEqual(Array(30).fill('auth_throttled'));
    const reads = store.reads;
    expect(await codeOf(verifier.verify(forgeMany(id, 1)[0]!, CALLER))).toBe('auth_throttled');
    expect(store.reads).toBe(reads);
    // The key's owner, never seen by this replica, is throttled too: the price of a per-id
    // budget (documented); a key that verified before is not (see (e)).
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('auth_throttled');
    // The window slides: once the first failures age out, a few more attempts are allowed.
    clock.advance(60_001);
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('ok');
    expect(hasher.verifyCalls).toBe(11);
  });

  it('(d) a concurrent burst of forged keys for one id cannot all pass the budget before the first fails', async () => {
    const { id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const wide = verifierWith(new VerifyPool(64, 64));
    const release = holdArgon2();
    const burst = Promise.all(forgeMany(id, 50).map((k) => codeOf(wide.verify(k, CALLER))));
    await until(() => hasher.verifyCalls === 10);
    release();
    const codes = await burst;
    expect(hasher.verifyCalls).toBe(10);
    expect(codes.filter((c) => c === 'invalid_key')).toHaveLength(10);
    expect(codes.filter((c) => c === 'auth_throttled')).toHaveLength(40);
  });

  it('per client address: failures across many ids are bounded by perAddress; other addresses keep theirs', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 40; i++)
      ids.push((await service.createKey(ACTOR, 'ci', { description: `k${i}` })).id);
    const codes: string[] = [];
    for (const id of ids) codes.push(await codeOf(verifier.verify(forgeMany(id, 1)[0]!, CALLER)));
    expect(hasher.verifyCalls).toBe(30);
    expect(codes.filter((c) => c === 'auth_throttled')).toHaveLength(10);
    // Another address: its own budget (the per-id budgets are far from spent).
    const other = { clientAddress: '198.51.100.7' };
    expect(await codeOf(verifier.verify(forgeMany(ids[0]!, 1)[0]!, other))).toBe('invalid_key');
    // The same /64 is the same client.
    const v6 = verifierWith(new VerifyPool(2, 4));
    for (let i = 0; i < 30; i++)
      await codeOf(
        v6.verify(forgeMany(ids[i]!, 1)[0]!, { clientAddress: `2001:db8:1:2::${i.toString(16)}` }),
      );
    expect(
      await codeOf(
        v6.verify(forgeMany(ids[31]!, 1)[0]!, { clientAddress: '2001:db8:1:2:ffff::1' }),
      ),
    ).toBe('auth_throttled');
    expect(
      await codeOf(v6.verify(forgeMany(ids[31]!, 1)[0]!, { clientAddress: '2001:db8:1:3::1' })),
    ).toBe('invalid_key');
  });

  it('(e) a key that verified before re-verifies with no argon2 after its cache entry expired, even while the pool is saturated', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const pool = new VerifyPool(1, 0);
    const busy = verifierWith(pool);
    await expect(busy.verify(key, CALLER)).resolves.toMatchObject({ account: 'ci' });
    expect(hasher.verifyCalls).toBe(1);
    clock.advance(30_001); // the verified-key cache entry expired
    let release!: () => void;
    const running = pool.run(
      () =>
        new Promise<void>((r) => {
          release = r;
        }),
    );
    expect(pool.saturated).toBe(true);
    const reads = store.reads;
    for (let i = 0; i < 3; i++) {
      await expect(busy.verify(key, CALLER)).resolves.toMatchObject({ account: 'ci' });
      clock.advance(30_001);
    }
    expect(hasher.verifyCalls).toBe(1);
    expect(store.reads).toBe(reads + 3); // the record is read afresh each time: revocation still counts
    release();
    await running;
  });

  it('(e) a key that verified before still passes while its id and its address are throttled by a flood', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await verifier.verify(key, CALLER);
    const wrong = forgeMany(id, 60);
    for (const k of wrong) await codeOf(verifier.verify(k, CALLER));
    expect(hasher.verifyCalls).toBe(1 + 10);
    clock.advance(30_001); // cache entry gone, failure window (60 s) still running
    expect(await codeOf(verifier.verify(forgeMany(id, 1)[0]!, CALLER))).toBe('auth_throttled');
    await expect(verifier.verify(key, CALLER)).resolves.toMatchObject({ keyId: id });
    expect(hasher.verifyCalls).toBe(11);
  });

  it('known-good is tied to the stored hash and never outlives the record status', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await verifier.verify(key, CALLER);
    clock.advance(30_001);
    // Revoked behind the verifier's back (no invalidation): the fresh read still refuses it.
    const record = store.keys.get(id)!;
    store.keys.set(id, { ...record, revokedAt: clock.seconds });
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('revoked_key');
    // The same id now holds another hash: the old proof does not carry over, argon2 decides.
    clock.advance(10_001);
    store.keys.set(id, { ...record, hash: await hasher.hash('something else') });
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('invalid_key');
    expect(hasher.verifyCalls).toBe(2);
  });

  it('arbitrary presented strings never reach the store or argon2 unless well-formed', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const mutated = fc
      .tuple(fc.nat({ max: key.length - 1 }), fc.constantFrom(...ALPHABET, '_', '%', '\u0000', 'é'))
      .map(([at, c]) => key.slice(0, at) + c + key.slice(at + 1));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string(), fc.string({ unit: 'binary', maxLength: 80 }), mutated),
        async (presented) => {
          const reads = store.reads;
          const code = await codeOf(verifier.verify(presented, CALLER));
          if (parseKey(presented, 'kg') === null) {
            expect(code).toBe('invalid_key');
            expect(store.reads).toBe(reads);
          }
          expect(code === 'ok' ? presented : '').toBe(code === 'ok' ? key : '');
        },
      ),
    );
    expect(hasher.verifyCalls).toBeLessThanOrEqual(11);
  });
});

describe('revocation means now, in-flight verifications included (DESIGN §12.4)', () => {
  it('(a) a request that starts after a revoke returned does not join a verification that read the store before it', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const release = holdArgon2();
    const first = codeOf(verifier.verify(key, CALLER)); // has read the active record; argon2 pending
    await until(() => hasher.verifyCalls === 1);
    await service.revokeKey(ACTOR, 'ci', id); // returns after the store write and the invalidation
    const second = codeOf(verifier.verify(key, CALLER));
    release();
    expect(await second).toBe('revoked_key');
    expect(await first).toBe('revoked_key');
    expect(hasher.verifyCalls).toBe(1); // the revoked record needed no argon2
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('revoked_key');
  });

  it('(b) requests that joined before the revoke are not handed the principal computed before it', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const release = holdArgon2();
    const joined = Array.from({ length: 5 }, () => codeOf(verifier.verify(key, CALLER)));
    await until(() => hasher.verifyCalls === 1);
    await service.revokeKey(ACTOR, 'ci', id);
    release();
    expect(await Promise.all(joined)).toEqual(Array(5).fill('revoked_key'));
    expect(hasher.verifyCalls).toBe(1);
  });

  it('(b) a role downgrade during a verification: its waiters get the new role, not the old', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const releaseRead = store.holdNextAccountRead();
    const pending = verifier.verify(key, CALLER); // has read the account as "member"
    await until(() => store.accountReadHeld);
    await service.updateAccount(ACTOR, 'ci', { role: 'reader' });
    releaseRead();
    const principal = await pending;
    expect(principal.role).toBe('reader');
    expect([...principal.scopes]).toEqual(['read']);
  });

  it('(b) an account disabled during a verification: its waiters and later requests are refused', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const releaseRead = store.holdNextAccountRead();
    const pending = codeOf(verifier.verify(key, CALLER)); // has read the account as enabled
    await until(() => store.accountReadHeld);
    await service.updateAccount(ACTOR, 'ci', { disabled: true });
    const after = codeOf(verifier.verify(key, CALLER));
    releaseRead();
    expect(await pending).toBe('account_disabled');
    expect(await after).toBe('account_disabled');
  });

  it('(c) a refusal computed before a re-enable is not cached past it', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await service.updateAccount(ACTOR, 'ci', { disabled: true });
    const releaseRead = store.holdNextAccountRead();
    const pending = codeOf(verifier.verify(key, CALLER)); // reads "disabled", then waits
    await until(() => store.accountReadHeld);
    await service.updateAccount(ACTOR, 'ci', { disabled: false }); // invalidates
    releaseRead();
    // It started before the re-enable returned: refusing it is allowed (and the safe side)...
    expect(await pending).toBe('account_disabled');
    // ...but the stale refusal must not outlive the re-enable.
    await expect(verifier.verify(key, CALLER)).resolves.toMatchObject({ account: 'ci' });
  });

  it('invalidations that never stop: bounded re-verification, then 503 verify_overloaded, never an allow', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    store.afterKeyRead = () => verifier.invalidateKey(id);
    const reads = store.reads;
    expect(await codeOf(verifier.verify(key, CALLER))).toBe('verify_overloaded');
    expect(store.reads - reads).toBe(3);
    expect(hasher.verifyCalls).toBe(1); // re-verifications need no argon2
    store.afterKeyRead = undefined;
    await expect(verifier.verify(key, CALLER)).resolves.toMatchObject({ account: 'ci' });
  });

  it('a cache clear (pub/sub reconnect) also drops in-flight verifications', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const release = holdArgon2();
    const first = codeOf(verifier.verify(key, CALLER));
    await until(() => hasher.verifyCalls === 1);
    // Revoked on another replica while this one was disconnected: it only sees the reconnect.
    store.keys.set(id, { ...store.keys.get(id)!, revokedAt: clock.seconds });
    verifier.clear();
    const second = codeOf(verifier.verify(key, CALLER));
    release();
    expect(await second).toBe('revoked_key');
    expect(await first).toBe('revoked_key');
  });

  it('after an invalidation, new requests share one fresh verification again', async () => {
    const { key, id } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const release = holdArgon2();
    const first = verifier.verify(key, CALLER);
    await until(() => hasher.verifyCalls === 1);
    verifier.invalidateKey(id);
    const later = [verifier.verify(key, CALLER), verifier.verify(key, CALLER)];
    await until(() => hasher.verifyCalls === 2);
    release();
    const [a, b] = await Promise.all(later);
    expect(a).toBe(b);
    await expect(first).resolves.toMatchObject({ keyId: id });
    expect(hasher.verifyCalls).toBe(2);
  });
});

describe('refusal attribution: which record a refusal names (the access log and metrics use it)', () => {
  async function refusalOf(presented: string): Promise<unknown> {
    try {
      await verifier.verify(presented, CALLER);
    } catch (err) {
      return err;
    }
    throw new Error('expected a refusal');
  }

  it('expired, revoked and disabled name the key id and account, fresh and from the negative cache', async () => {
    await service.createAccount(ACTOR, { name: 'off', role: 'reader' });
    const expiring = await service.createKey(ACTOR, 'ci', {
      description: 'd',
      expiresAt: clock.seconds + 10,
    });
    const revoked = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const disabled = await service.createKey(ACTOR, 'off', { description: 'd' });
    await service.revokeKey(ACTOR, 'ci', revoked.id);
    await service.updateAccount(ACTOR, 'off', { disabled: true });
    clock.advance(11_000);
    const cases = [
      [expiring, 'ci', 'expired_key'],
      [revoked, 'ci', 'revoked_key'],
      [disabled, 'off', 'account_disabled'],
    ] as const;
    for (const [issued, account, code] of cases) {
      for (const presented of [issued.key, issued.key, forge(issued.id, 'x'.repeat(43))]) {
        const err = await refusalOf(presented);
        expect(err).toBeInstanceOf(AttributedKeyRefusal);
        expect(err).toMatchObject({ code, keyId: issued.id, account, status: 401 });
      }
    }
    expect(hasher.verifyCalls).toBe(0); // attributed without proof: that is why it is a claim
  });

  it('invalid_key never names a record: unknown id, wrong secret, key of a deleted account', async () => {
    const live = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const presented = [
      forge('AAAAAAAAAAAA', 'B'.repeat(43)),
      forge(live.id, 'B'.repeat(43)),
      forge(live.id, 'B'.repeat(43)), // from the negative cache
      'kg_nonsense',
    ];
    for (const p of presented) {
      const err = await refusalOf(p);
      expect(err).toBeInstanceOf(KeygateError);
      expect(err).not.toBeInstanceOf(AttributedKeyRefusal);
      expect(err).toMatchObject({ code: 'invalid_key' });
    }
    store.accounts.delete('ci'); // the record stays, its account is gone: names nobody
    clock.advance(10_001);
    const err = await refusalOf(live.key);
    expect(err).not.toBeInstanceOf(AttributedKeyRefusal);
    expect(err).toMatchObject({ code: 'invalid_key' });
  });
});

describe('config reload: new roles (setRoles)', () => {
  it('a cached allow is dropped: the next verify carries the new role scopes', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    expect([...(await verifier.verify(key, CALLER)).scopes]).toEqual(['read', 'write']);
    verifier.setRoles({ ...ROLES, member: ['read'] });
    expect([...(await verifier.verify(key, CALLER)).scopes]).toEqual(['read']);
    // The key itself still verifies from knownGood: no second argon2 for a role change.
    expect(hasher.verifyCalls).toBe(1);
  });

  it('a verification in flight across the change is not used with the old roles', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const releaseRead = store.holdNextAccountRead();
    const pending = verifier.verify(key, CALLER);
    await until(() => store.accountReadHeld);
    verifier.setRoles({ ...ROLES, member: ['read'] });
    releaseRead();
    expect([...(await pending).scopes]).toEqual(['read']);
    expect([...(await verifier.verify(key, CALLER)).scopes]).toEqual(['read']);
  });

  it('a role a reload removes grants nothing to keys cached under it', async () => {
    const { key } = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await verifier.verify(key, CALLER);
    const { member: _gone, ...rest } = ROLES;
    verifier.setRoles(rest);
    expect((await verifier.verify(key, CALLER)).scopes.size).toBe(0);
  });
});
