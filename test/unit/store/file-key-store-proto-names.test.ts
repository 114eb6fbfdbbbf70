import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { FileKeyStore } from '../../../src/store/file-key-store.js';
import { aKey, anAccount } from '../../helpers/key-store-contract.js';

// Names and ids reach the store from clients. In a plain object, `doc.accounts["__proto__"] =`
// replaced the object's prototype instead of storing an account; the maps are null-prototype.

async function openTemp(): Promise<{ store: FileKeyStore; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kg-proto-'));
  const path = join(dir, 'keygate.json');
  const store = await FileKeyStore.open(path);
  onTestFinished(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { store, path };
}

describe('FileKeyStore with names that are JavaScript object properties', () => {
  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '0']) {
    it(`stores, lists, reloads and deletes an account and a key named "${name}"`, async () => {
      const { store, path } = await openTemp();
      await store.createAccount(anAccount({ name }));
      await store.createKey(aKey({ id: name, account: name }));
      expect((await store.getAccount(name))?.name).toBe(name);
      expect((await store.getKey(name))?.account).toBe(name);
      expect((await store.listAccounts()).map((a) => a.name)).toEqual([name]);
      expect((await store.listKeys(name)).map((k) => k.id)).toEqual([name]);
      await store.updateAccount(name, { description: 'changed', updatedAt: 1_700_000_001 });
      await store.close();

      const again = await FileKeyStore.open(path);
      onTestFinished(() => again.close());
      expect((await again.getAccount(name))?.description).toBe('changed');
      expect((await again.getKey(name))?.id).toBe(name);
      expect(await again.deleteAccount(name)).toEqual([name]);
      expect(await again.getAccount(name)).toBeNull();
      expect(await again.listAccounts()).toEqual([]);
    });
  }
});
