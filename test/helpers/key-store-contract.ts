import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KeygateError } from '../../src/errors.js';
import type { AccountRecord, KeyRecord, KeyStore } from '../../src/store/key-store.js';

export function anAccount(overrides: Partial<AccountRecord> = {}): AccountRecord {
  return {
    name: 'ci',
    role: 'reader',
    description: 'CI jobs',
    disabled: false,
    createdAt: 1_700_000_000,
    updatedAt: 1_700_000_000,
    ...overrides,
  };
}

let counter = 0;
export function aKey(overrides: Partial<KeyRecord> = {}): KeyRecord {
  counter++;
  return {
    id: `k${String(counter).padStart(11, '0')}`,
    account: 'ci',
    hash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA',
    description: 'nightly report',
    scopes: null,
    createdAt: 1_700_000_000 + counter,
    expiresAt: 0,
    revokedAt: 0,
    lastUsedAt: 0,
    generation: 1,
    ...overrides,
  };
}

async function expectCode(promise: Promise<unknown>, code: string) {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KeygateError);
  expect((err as KeygateError).code).toBe(code);
}

export interface ContractHarness {
  store: KeyStore;
  /** Opens a second handle on the same data (a restart, or another replica). */
  reopen(): Promise<KeyStore>;
  cleanup(): Promise<void>;
}

/** The behaviour every KeyStore must have; run against each implementation. */
export function describeKeyStoreContract(name: string, create: () => Promise<ContractHarness>) {
  describe(`KeyStore contract: ${name}`, () => {
    let h: ContractHarness;
    beforeEach(async () => {
      h = await create();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('round-trips an account and a key exactly', async () => {
      const account = anAccount();
      const key = aKey({
        scopes: ['read'],
        expiresAt: 4_000_000_000,
        description: 'ünïcode & "quotes"',
      });
      await h.store.createAccount(account);
      await h.store.createKey(key);
      expect(await h.store.getAccount('ci')).toEqual(account);
      expect(await h.store.getKey(key.id)).toEqual(key);
    });

    it('returns null for unknown ids and names', async () => {
      expect(await h.store.getKey('nosuchkey000')).toBeNull();
      expect(await h.store.getAccount('nobody')).toBeNull();
      expect(await h.store.getKey('__proto__')).toBeNull();
      expect(await h.store.getAccount('constructor')).toBeNull();
    });

    it('refuses a duplicate account with conflict, leaving the first intact', async () => {
      await h.store.createAccount(anAccount());
      await expectCode(h.store.createAccount(anAccount({ role: 'admin' })), 'conflict');
      expect((await h.store.getAccount('ci'))?.role).toBe('reader');
      expect(await h.store.listAccounts()).toHaveLength(1);
    });

    it('refuses a key for a missing account with not_found and writes nothing', async () => {
      const key = aKey({ account: 'ghost' });
      await expectCode(h.store.createKey(key), 'not_found');
      expect(await h.store.getKey(key.id)).toBeNull();
      expect(await h.store.listKeys('ghost')).toEqual([]);
    });

    it('refuses a duplicate key id with conflict', async () => {
      await h.store.createAccount(anAccount());
      const key = aKey();
      await h.store.createKey(key);
      await expectCode(h.store.createKey({ ...key, description: 'other' }), 'conflict');
      expect((await h.store.getKey(key.id))?.description).toBe(key.description);
    });

    it('lists accounts by name and keys by creation time', async () => {
      await h.store.createAccount(anAccount({ name: 'zeta' }));
      await h.store.createAccount(anAccount({ name: 'alpha' }));
      const first = aKey({ account: 'zeta', createdAt: 10 });
      const second = aKey({ account: 'zeta', createdAt: 20 });
      await h.store.createKey(second);
      await h.store.createKey(first);
      expect((await h.store.listAccounts()).map((a) => a.name)).toEqual(['alpha', 'zeta']);
      expect((await h.store.listKeys('zeta')).map((k) => k.id)).toEqual([first.id, second.id]);
      expect(await h.store.listKeys('alpha')).toEqual([]);
    });

    it('keeps everything across a reopen (restart or another replica)', async () => {
      await h.store.createAccount(anAccount());
      const key = aKey();
      await h.store.createKey(key);
      const other = await h.reopen();
      expect(await other.getKey(key.id)).toEqual(key);
      expect(await other.getAccount('ci')).toEqual(anAccount());
    });

    it('answers ping while healthy', async () => {
      await expect(h.store.ping()).resolves.toBeUndefined();
    });
  });
}
