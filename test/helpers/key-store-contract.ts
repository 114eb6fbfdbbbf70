import { beforeEach, describe, expect, it } from 'vitest';
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
    replacedBy: '',
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
    // Each test gets a fresh harness; its cleanup is registered by the test it was made for.
    beforeEach(async ({ onTestFinished }) => {
      const harness = await create();
      onTestFinished(() => harness.cleanup());
      h = harness;
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

    it('updateAccount changes only the given fields; not_found for a missing account', async () => {
      await h.store.createAccount(anAccount());
      const updated = await h.store.updateAccount('ci', {
        disabled: true,
        updatedAt: 1_800_000_000,
      });
      expect(updated).toEqual({ ...anAccount(), disabled: true, updatedAt: 1_800_000_000 });
      expect(await h.store.getAccount('ci')).toEqual(updated);
      const again = await h.store.updateAccount('ci', {
        role: 'admin',
        description: 'x',
        updatedAt: 1_800_000_001,
      });
      expect(again).toMatchObject({ role: 'admin', description: 'x', disabled: true });
      await expectCode(
        h.store.updateAccount('ghost', { role: 'admin', updatedAt: 1 }),
        'not_found',
      );
      expect(await h.store.getAccount('ghost')).toBeNull();
    });

    it('deleteAccount removes the account and all its keys, and only those', async () => {
      await h.store.createAccount(anAccount());
      await h.store.createAccount(anAccount({ name: 'other' }));
      const mine = [aKey(), aKey()];
      const theirs = aKey({ account: 'other' });
      for (const k of [...mine, theirs]) await h.store.createKey(k);
      expect((await h.store.deleteAccount('ci')).sort()).toEqual(mine.map((k) => k.id).sort());
      expect(await h.store.getAccount('ci')).toBeNull();
      for (const k of mine) expect(await h.store.getKey(k.id)).toBeNull();
      expect(await h.store.listKeys('ci')).toEqual([]);
      expect((await h.store.listAccounts()).map((a) => a.name)).toEqual(['other']);
      expect(await h.store.getKey(theirs.id)).toEqual(theirs);
      await expectCode(h.store.deleteAccount('ci'), 'not_found');
    });

    it('updateKey is compare-and-set on generation', async () => {
      await h.store.createAccount(anAccount());
      const key = aKey();
      await h.store.createKey(key);
      const revoked = await h.store.updateKey(key.id, 1, { revokedAt: 1_800_000_000 });
      expect(revoked).toEqual({ ...key, revokedAt: 1_800_000_000, generation: 2 });
      expect(await h.store.getKey(key.id)).toEqual(revoked);
      await expectCode(h.store.updateKey(key.id, 1, { revokedAt: 5 }), 'conflict');
      expect((await h.store.getKey(key.id))?.revokedAt).toBe(1_800_000_000);
      await expectCode(h.store.updateKey('nosuchkey000', 1, { revokedAt: 5 }), 'not_found');
    });

    it('rotateKey stores the new key and shortens the old one, once', async () => {
      await h.store.createAccount(anAccount());
      const old = aKey();
      await h.store.createKey(old);
      const next = aKey({ description: old.description });
      await h.store.rotateKey(old.id, 1, next, 1_900_000_000);
      expect(await h.store.getKey(next.id)).toEqual(next);
      expect(await h.store.getKey(old.id)).toEqual({
        ...old,
        expiresAt: 1_900_000_000,
        replacedBy: next.id,
        generation: 2,
      });
      expect((await h.store.listKeys('ci')).map((k) => k.id).sort()).toEqual(
        [old.id, next.id].sort(),
      );
      // A second rotation of the same old key loses, and leaves no trace of its new key.
      const loser = aKey();
      await expectCode(h.store.rotateKey(old.id, 2, loser, 1_900_000_001), 'conflict');
      await expectCode(h.store.rotateKey(old.id, 1, aKey(), 1_900_000_001), 'conflict');
      expect(await h.store.getKey(loser.id)).toBeNull();
      expect(await h.store.listKeys('ci')).toHaveLength(2);
      expect((await h.store.getKey(old.id))?.expiresAt).toBe(1_900_000_000);
    });

    it('touchKeys only moves last_used_at forward and ignores missing keys', async () => {
      await h.store.createAccount(anAccount());
      const key = aKey();
      await h.store.createKey(key);
      await h.store.touchKeys([
        { id: key.id, lastUsedAt: 1_800_000_100 },
        { id: 'nosuchkey000', lastUsedAt: 5 },
      ]);
      expect((await h.store.getKey(key.id))?.lastUsedAt).toBe(1_800_000_100);
      await h.store.touchKeys([{ id: key.id, lastUsedAt: 1_800_000_050 }]);
      expect((await h.store.getKey(key.id))?.lastUsedAt).toBe(1_800_000_100);
      expect(await h.store.getKey('nosuchkey000')).toBeNull();
      // Last use is not a change of the key: it does not disturb compare-and-set.
      expect((await h.store.getKey(key.id))?.generation).toBe(1);
    });

    it('addKeyUses adds to request counts, ignores missing keys, survives a reopen and leaves the generation alone', async () => {
      await h.store.createAccount(anAccount());
      const key = aKey();
      await h.store.createKey(key);
      expect((await h.store.getKey(key.id))?.requestCount ?? 0).toBe(0);
      await h.store.addKeyUses([
        { id: key.id, count: 3 },
        { id: 'nosuchkey000', count: 5 },
      ]);
      // Another replica (Redis) adds its own counts: they sum.
      const other = await h.reopen();
      await other.addKeyUses([{ id: key.id, count: 4 }]);
      expect((await other.getKey(key.id))?.requestCount).toBe(7);
      expect((await other.listKeys('ci'))[0]?.requestCount).toBe(7);
      expect(await other.getKey('nosuchkey000')).toBeNull();
      // Usage is not a change of the key: it does not disturb compare-and-set.
      expect((await other.getKey(key.id))?.generation).toBe(1);
    });

    it('addKeyUses never recreates a deleted key', async () => {
      await h.store.createAccount(anAccount());
      const key = aKey();
      await h.store.createKey(key);
      await h.store.deleteAccount('ci');
      await h.store.addKeyUses([{ id: key.id, count: 2 }]);
      expect(await h.store.getKey(key.id)).toBeNull();
      // Nothing of the record is left behind: the same id can be created afresh (a leftover
      // hash holding only request_count would make this a conflict on Redis), with no count.
      await h.store.createAccount(anAccount());
      await h.store.createKey(key);
      expect((await h.store.getKey(key.id))?.requestCount ?? 0).toBe(0);
    });

    it('a request count survives every other write of the key: update, rotation, apply', async () => {
      await h.store.createAccount(anAccount({ managed: true }));
      const key = aKey();
      await h.store.createKey(key);
      await h.store.addKeyUses([{ id: key.id, count: 2 }]);
      const updated = await h.store.updateKey(key.id, 1, { expiresAt: 4_000_000_000 });
      expect(updated.requestCount).toBe(2);
      // The batch was planned from a record holding 2; uses added since must not be undone.
      const planned = (await h.store.getKey(key.id)) as KeyRecord;
      await h.store.addKeyUses([{ id: key.id, count: 5 }]);
      await h.store.applyAccounts({
        createAccounts: [],
        updateAccounts: [],
        deleteAccounts: [],
        createKeys: [],
        updateKeys: [{ expected: planned, change: { description: 'renamed' } }],
      });
      expect(await h.store.getKey(key.id)).toMatchObject({
        description: 'renamed',
        requestCount: 7,
      });
      const next = aKey();
      await h.store.rotateKey(key.id, 3, next, 4_000_000_000);
      expect((await h.store.getKey(key.id))?.requestCount).toBe(7);
      expect((await h.store.getKey(next.id))?.requestCount ?? 0).toBe(0);
    });

    it('applyAccounts writes a whole batch: creates, updates, key changes, deletions; survives a reopen', async () => {
      const managed = anAccount({ name: 'gone', managed: true });
      const kept = anAccount({ name: 'kept', managed: true });
      await h.store.createAccount(managed);
      await h.store.createAccount(kept);
      const goneKey = aKey({ account: 'gone' });
      const keptKey = aKey({ account: 'kept', expiresAt: 4_000_000_000 });
      await h.store.createKey(goneKey);
      await h.store.createKey(keptKey);
      await h.store.touchKeys([{ id: keptKey.id, lastUsedAt: 1_800_000_000 }]);
      const created = anAccount({ name: 'new', managed: true });
      const newKey = aKey({ account: 'new', scopes: ['read'], expiresAt: 4_100_000_000 });
      await h.store.applyAccounts({
        createAccounts: [created],
        updateAccounts: [
          { expected: kept, next: { ...kept, role: 'admin', updatedAt: 1_700_000_100 } },
        ],
        deleteAccounts: [{ expected: managed, keyIds: [goneKey.id] }],
        createKeys: [newKey],
        updateKeys: [
          {
            expected: keptKey,
            change: { revokedAt: 1_700_000_200, expiresAt: 0, scopes: ['read'] },
          },
        ],
      });
      for (const store of [h.store, await h.reopen()]) {
        expect(await store.getAccount('new')).toEqual(created);
        expect(await store.getKey(newKey.id)).toEqual(newKey);
        expect(await store.getAccount('kept')).toEqual({
          ...kept,
          role: 'admin',
          updatedAt: 1_700_000_100,
        });
        // last_used_at is not the batch's to lower; the generation moves as with updateKey.
        expect(await store.getKey(keptKey.id)).toEqual({
          ...keptKey,
          revokedAt: 1_700_000_200,
          expiresAt: 0,
          scopes: ['read'],
          lastUsedAt: 1_800_000_000,
          generation: 2,
        });
        expect(await store.getAccount('gone')).toBeNull();
        expect(await store.getKey(goneKey.id)).toBeNull();
        expect((await store.listAccounts()).map((a) => a.name)).toEqual(['kept', 'new']);
        expect((await store.listKeys('new')).map((k) => k.id)).toEqual([newKey.id]);
      }
    });

    it('applyAccounts refuses a whole batch when any record changed since it was read', async () => {
      const account = anAccount({ name: 'a', managed: true });
      await h.store.createAccount(account);
      const key = aKey({ account: 'a' });
      await h.store.createKey(key);
      await h.store.updateKey(key.id, 1, { expiresAt: 4_000_000_000 }); // generation 2 now
      const newKey = aKey({ account: 'a' });
      await expectCode(
        h.store.applyAccounts({
          createAccounts: [anAccount({ name: 'b', managed: true })],
          updateAccounts: [{ expected: account, next: { ...account, disabled: true } }],
          deleteAccounts: [],
          createKeys: [newKey],
          updateKeys: [{ expected: key, change: { revokedAt: 1 } }],
        }),
        'conflict',
      );
      expect(await h.store.getAccount('b')).toBeNull();
      expect((await h.store.getAccount('a'))?.disabled).toBe(false);
      expect(await h.store.getKey(newKey.id)).toBeNull();
      expect((await h.store.getKey(key.id))?.revokedAt).toBe(0);
    });

    it('keeps filters: created, replaced, cleared (no field left), across a reopen', async () => {
      // Hostile-looking but valid text: quotes, commas, brackets, a backslash, unicode.
      const filters = {
        allocation: 'namespace:"team-a","team-b"+label[app]:"ünï\\"',
        cloudCost: 'provider:"aws"',
      };
      const account = anAccount({ filters });
      await h.store.createAccount(account);
      await h.store.createAccount(anAccount({ name: 'other', filters: { assets: 'cluster:"c"' } }));
      expect(await h.store.getAccount('ci')).toEqual(account);
      const replaced = await h.store.updateAccount('ci', {
        filters: { assets: 'cluster:"c1"' },
        updatedAt: 1_800_000_000,
      });
      expect(replaced.filters).toEqual({ assets: 'cluster:"c1"' });
      // Other changes leave the filters alone.
      const described = await h.store.updateAccount('ci', {
        description: 'd',
        updatedAt: 1_800_000_001,
      });
      expect(described.filters).toEqual({ assets: 'cluster:"c1"' });
      const cleared = await h.store.updateAccount('ci', { filters: {}, updatedAt: 1_800_000_002 });
      const { filters: _f, ...unfiltered } = account;
      expect(cleared).toStrictEqual({ ...unfiltered, description: 'd', updatedAt: 1_800_000_002 });
      for (const store of [h.store, await h.reopen()]) {
        expect(await store.getAccount('ci')).toStrictEqual(cleared);
        expect((await store.getAccount('other'))?.filters).toEqual({ assets: 'cluster:"c"' });
        expect((await store.listAccounts()).map((a) => a.filters)).toEqual([
          undefined,
          { assets: 'cluster:"c"' },
        ]);
      }
    });

    it('applyAccounts sets and removes filters, and a filters change makes a batch stale', async () => {
      const account = anAccount({
        name: 'a',
        managed: true,
        filters: { allocation: 'namespace:"x"' },
      });
      const b = anAccount({ name: 'b', managed: true, filters: { assets: 'cluster:"c"' } });
      await h.store.createAccount(account);
      await h.store.createAccount(b);
      const { filters: _f, ...unfiltered } = account;
      // Someone changed b's filters by hand since a plan read it: that batch is refused whole.
      await h.store.updateAccount('b', {
        filters: { assets: 'cluster:"d"' },
        updatedAt: b.updatedAt,
      });
      await expectCode(
        h.store.applyAccounts({
          createAccounts: [],
          updateAccounts: [{ expected: b, next: { ...b, disabled: true } }],
          deleteAccounts: [],
          createKeys: [],
          updateKeys: [],
        }),
        'conflict',
      );
      expect((await h.store.getAccount('b'))?.disabled).toBe(false);
      await h.store.applyAccounts({
        createAccounts: [
          anAccount({ name: 'c', managed: true, filters: { cloudCost: 'provider:"gcp"' } }),
        ],
        updateAccounts: [{ expected: account, next: { ...unfiltered, updatedAt: 1_700_000_100 } }],
        deleteAccounts: [],
        createKeys: [],
        updateKeys: [],
      });
      for (const store of [h.store, await h.reopen()]) {
        expect(await store.getAccount('a')).toStrictEqual({
          ...unfiltered,
          updatedAt: 1_700_000_100,
        });
        expect((await store.getAccount('c'))?.filters).toEqual({ cloudCost: 'provider:"gcp"' });
      }
    });

    it('answers ping while healthy', async () => {
      await expect(h.store.ping()).resolves.toBeUndefined();
    });
  });
}
