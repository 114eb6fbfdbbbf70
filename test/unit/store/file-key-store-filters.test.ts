import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { FileKeyStore } from '../../../src/store/file-key-store.js';
import { anAccount } from '../../helpers/key-store-contract.js';

async function fileWith(accounts: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kg-filters-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'keygate.json');
  await writeFile(path, JSON.stringify({ version: 1, accounts, keys: {} }));
  return path;
}

describe('FileKeyStore and stored filters', () => {
  it('opens a file written before filters existed: its accounts are not filtered', async () => {
    const path = await fileWith({ ci: anAccount() });
    const store = await FileKeyStore.open(path);
    onTestFinished(() => store.close());
    expect(await store.getAccount('ci')).toEqual(anAccount());
  });

  it.each([
    ['a number', { allocation: 1 }],
    ['an unknown kind', { Allocation: 'namespace:"a"' }],
    ['a list', ['namespace:"a"']],
    ['a string', 'namespace:"a"'],
  ])(
    'refuses to open a file whose account has malformed filters (%s): never served unfiltered',
    async (_what, filters) => {
      const path = await fileWith({ ci: { ...anAccount(), filters } });
      await expect(FileKeyStore.open(path)).rejects.toMatchObject({ code: 'store_unavailable' });
    },
  );
});
