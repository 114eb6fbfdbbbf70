import { beforeEach, describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import type { Actor, AuditEntry, KeyService } from '../../../src/keys/key-service.js';
import type { AccountsBatch } from '../../../src/store/accounts-batch.js';
import type { Invalidation } from '../../../src/store/invalidation-bus.js';
import type { FakeClock } from '../../helpers/fake-clock.js';
import { keyServiceFixture } from '../../helpers/key-service-fixture.js';
import type { MemoryKeyStore } from '../../helpers/memory-key-store.js';

const CLI: Actor = { kind: 'cli', user: 'ops' };
const ROLES = { admin: ['read', 'write', 'admin'], member: ['read', 'write'], reader: ['read'] };
const hash = (n: number) =>
  `$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0${String(n).padStart(6, '0')}$${'A'.repeat(43)}`;

let store: MemoryKeyStore;
let clock: FakeClock;
let service: KeyService;
let events: Invalidation[];
let audit: AuditEntry[];

beforeEach(() => {
  ({ store, clock, service, events, audit } = keyServiceFixture(ROLES));
});

const file = (...accounts: unknown[]) => ({ accounts });
const nightly = (keys: unknown[] = [{ id: 'AbCdEf123456', hash: hash(1), scopes: ['read'] }]) => ({
  name: 'ci-nightly',
  role: 'member',
  description: 'nightly',
  keys,
});

function snapshot() {
  return JSON.stringify([[...store.accounts.entries()], [...store.keys.entries()]]);
}

describe('KeyService.applyAccounts', () => {
  it('creates accounts (marked managed) and imports keys; a second run changes nothing', async () => {
    const first = await service.applyAccounts(
      CLI,
      file(nightly(), { name: 'dash', role: 'reader' }),
    );
    expect(
      first.changes.map((c) => `${c.action} ${c.account}${c.key_id ? `/${c.key_id}` : ''}`),
    ).toEqual([
      'account.create ci-nightly',
      'key.import ci-nightly/AbCdEf123456',
      'account.create dash',
    ]);
    expect(store.accounts.get('ci-nightly')).toMatchObject({ role: 'member', managed: true });
    expect(store.keys.get('AbCdEf123456')).toMatchObject({
      account: 'ci-nightly',
      hash: hash(1),
      scopes: ['read'],
      revokedAt: 0,
    });
    // An import drops any refusal of its id a replica may have cached from an early try.
    expect(events).toEqual([{ kind: 'key', id: 'AbCdEf123456' }]);
    const before = snapshot();
    clock.advance(60_000);
    const second = await service.applyAccounts(
      CLI,
      file(nightly(), { name: 'dash', role: 'reader' }),
    );
    expect(second).toEqual({ changes: [], warnings: [] });
    expect(snapshot()).toBe(before);
  });

  it('--dry-run reports the same diff and writes nothing', async () => {
    const dry = await service.applyAccounts(CLI, file(nightly()), { dryRun: true });
    expect(store.accounts.size).toBe(0);
    expect(store.keys.size).toBe(0);
    expect(events).toEqual([]);
    const real = await service.applyAccounts(CLI, file(nightly()));
    expect(real.changes).toEqual(dry.changes);
  });

  it('updates account fields and key description, expiry and scopes, publishing invalidations', async () => {
    await service.applyAccounts(CLI, file(nightly()));
    events.length = 0;
    const later = clock.seconds + 86_400;
    const { changes } = await service.applyAccounts(
      CLI,
      file({
        ...nightly([{ id: 'AbCdEf123456', hash: hash(1), description: 'd2', expires_at: later }]),
        role: 'reader',
        disabled: true,
      }),
    );
    expect(changes).toEqual([
      {
        action: 'account.update',
        account: 'ci-nightly',
        diff: [
          { field: 'role', from: 'member', to: 'reader' },
          { field: 'disabled', from: false, to: true },
        ],
      },
      {
        action: 'key.update',
        account: 'ci-nightly',
        key_id: 'AbCdEf123456',
        diff: [
          { field: 'description', from: '', to: 'd2' },
          { field: 'expires_at', from: 0, to: later },
          { field: 'scopes', from: ['read'], to: null },
        ],
      },
    ]);
    expect(events).toEqual([
      { kind: 'account', name: 'ci-nightly' },
      { kind: 'key', id: 'AbCdEf123456' },
    ]);
    expect(store.keys.get('AbCdEf123456')).toMatchObject({ expiresAt: later, generation: 2 });
  });

  it('refuses a different hash for an existing id, writing nothing', async () => {
    await service.applyAccounts(CLI, file(nightly()));
    const before = snapshot();
    const err = await service
      .applyAccounts(
        CLI,
        file(nightly([{ id: 'AbCdEf123456', hash: hash(2) }]), { name: 'new', role: 'reader' }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeygateError);
    expect((err as KeygateError).code).toBe('conflict');
    expect((err as KeygateError).message).toMatch(/^accounts\[0\]\.keys\[0\]\.hash: differs/);
    expect((err as KeygateError).message).not.toContain(hash(2));
    expect(snapshot()).toBe(before);
  });

  it('never takes over an account made by hand, and never prunes one', async () => {
    await service.createAccount(CLI, { name: 'ci-nightly', role: 'admin' });
    await service.createAccount(CLI, { name: 'handmade', role: 'admin' });
    const before = snapshot();
    const err = await service.applyAccounts(CLI, file(nightly())).catch((e: unknown) => e);
    expect((err as KeygateError).code).toBe('conflict');
    expect((err as KeygateError).message).toMatch(
      /^accounts\[0\]\.name: service account "ci-nightly" exists and was not created by keygate apply/,
    );
    expect(snapshot()).toBe(before);
    const pruned = await service.applyAccounts(CLI, file(), { prune: true });
    expect(pruned.changes).toEqual([]);
    expect(store.accounts.has('handmade')).toBe(true);
  });

  it('refuses a key id another account holds, without saying whose', async () => {
    await service.createAccount(CLI, { name: 'other', role: 'reader' });
    const issued = await service.createKey(CLI, 'other', { description: 'x' });
    const err = await service
      .applyAccounts(CLI, file(nightly([{ id: issued.id, hash: hash(1) }])))
      .catch((e: unknown) => e);
    expect((err as KeygateError).message).toBe(
      `accounts[0].keys[0].id: key id ${issued.id} is already taken; mint a new key`,
    );
    expect(store.accounts.has('ci-nightly')).toBe(false);
  });

  it('--prune revokes unlisted keys of managed accounts and deletes unlisted managed accounts', async () => {
    await service.applyAccounts(
      CLI,
      file(
        nightly([
          { id: 'AbCdEf123456', hash: hash(1) },
          { id: 'ZyXwVu654321', hash: hash(2) },
        ]),
        { name: 'gone', role: 'reader', keys: [{ id: 'GoneGone0001', hash: hash(3) }] },
      ),
    );
    events.length = 0;
    const without = file(nightly([{ id: 'AbCdEf123456', hash: hash(1) }]));
    // Without --prune nothing is removed.
    expect((await service.applyAccounts(CLI, without)).changes).toEqual([]);
    const { changes } = await service.applyAccounts(CLI, without, { prune: true });
    expect(changes).toEqual([
      { action: 'key.revoke', account: 'ci-nightly', key_id: 'ZyXwVu654321' },
      { action: 'account.delete', account: 'gone' },
    ]);
    expect(store.keys.get('ZyXwVu654321')?.revokedAt).toBe(clock.seconds);
    expect(store.accounts.has('gone')).toBe(false);
    expect(store.keys.has('GoneGone0001')).toBe(false);
    expect(events).toEqual([
      { kind: 'key', id: 'ZyXwVu654321' },
      { kind: 'account', name: 'gone' },
    ]);
    expect((await service.applyAccounts(CLI, without, { prune: true })).changes).toEqual([]);
  });

  it('a revoked key listed again stays revoked (a warning, not a change); an expired new key is not imported', async () => {
    await service.applyAccounts(CLI, file(nightly()));
    await service.revokeKey(CLI, 'ci-nightly', 'AbCdEf123456');
    const past = clock.seconds - 10;
    const result = await service.applyAccounts(
      CLI,
      file(
        nightly([
          { id: 'AbCdEf123456', hash: hash(1), scopes: ['read'] },
          { id: 'OldOld000001', hash: hash(2), expires_at: past },
        ]),
      ),
    );
    expect(result.changes).toEqual([]);
    expect(result.warnings).toEqual([
      'accounts[0].keys[0]: key AbCdEf123456 is revoked and stays revoked (revocation is final); remove it from the file',
      'accounts[0].keys[1]: key OldOld000001 has expired; not imported',
    ]);
    expect(store.keys.get('AbCdEf123456')?.revokedAt).toBeGreaterThan(0);
  });

  it('audits each change as the CLI user, and the apply itself', async () => {
    await service.applyAccounts(CLI, file(nightly()));
    expect(audit).toEqual([
      { actor: CLI, action: 'account.create', target: 'ci-nightly', result: 'ok' },
      {
        actor: CLI,
        action: 'key.import',
        target: 'ci-nightly/AbCdEf123456',
        result: 'ok',
        details: { keyId: 'AbCdEf123456' },
      },
      { actor: CLI, action: 'accounts.apply', target: 'apply', result: 'ok' },
    ]);
  });

  it('an invalid file is refused before the store is read', async () => {
    store.down = true;
    const err = await service
      .applyAccounts(CLI, file({ name: 'a', role: 'owner' }))
      .catch((e: unknown) => e);
    expect((err as KeygateError).code).toBe('bad_request');
    expect(audit.at(-1)).toMatchObject({
      action: 'accounts.apply',
      result: 'error',
      error: 'bad_request',
    });
  });

  it('a key actor grants only the scopes it holds (invariant 3)', async () => {
    const reader: Actor = {
      kind: 'key',
      account: 'x',
      keyId: 'XXXXXXXXXXXX',
      scopes: new Set(['read']),
    };
    const err = await service.applyAccounts(reader, file(nightly())).catch((e: unknown) => e);
    expect((err as KeygateError).code).toBe('insufficient_scope');
    expect(store.accounts.size).toBe(0);
  });

  it('re-plans when a concurrent writer makes the batch stale; after three stale tries it fails writing nothing', async () => {
    const original = store.applyAccounts.bind(store);
    let calls = 0;
    let racing = 3;
    // Another writer changes the account between every plan and its write while `racing` lasts.
    store.applyAccounts = async (batch: AccountsBatch) => {
      calls++;
      if (racing-- > 0) {
        const current = store.accounts.get('ci-nightly');
        store.accounts.set('ci-nightly', {
          name: 'ci-nightly',
          role: 'reader',
          description: '',
          disabled: false,
          createdAt: 0,
          updatedAt: (current?.updatedAt ?? 0) + 1,
          managed: true,
        });
      }
      return original(batch);
    };
    const err = await service.applyAccounts(CLI, file(nightly())).catch((e: unknown) => e);
    expect(calls).toBe(3);
    expect((err as KeygateError).code).toBe('conflict');
    expect(store.keys.size).toBe(0);
    expect(events).toEqual([]);

    calls = 0;
    racing = 1;
    const { changes } = await service.applyAccounts(CLI, file(nightly()));
    expect(calls).toBe(2);
    expect(changes.map((c) => c.action)).toEqual(['account.update', 'key.import']);
    expect(store.accounts.get('ci-nightly')?.role).toBe('member');
  });
});

describe('the memory store batch is all or nothing', () => {
  it('a stale expectation anywhere in the batch refuses all of it', async () => {
    await store.createAccount({
      name: 'a',
      role: 'reader',
      description: '',
      disabled: false,
      createdAt: 1,
      updatedAt: 1,
      managed: true,
    });
    const before = snapshot();
    const batch: AccountsBatch = {
      createAccounts: [
        {
          name: 'b',
          role: 'reader',
          description: '',
          disabled: false,
          createdAt: 2,
          updatedAt: 2,
          managed: true,
        },
      ],
      updateAccounts: [
        {
          expected: {
            name: 'a',
            role: 'reader',
            description: '',
            disabled: false,
            createdAt: 1,
            updatedAt: 0,
            managed: true,
          },
          next: {
            name: 'a',
            role: 'admin',
            description: '',
            disabled: false,
            createdAt: 1,
            updatedAt: 2,
            managed: true,
          },
        },
      ],
      deleteAccounts: [],
      createKeys: [],
      updateKeys: [],
    };
    await expect(store.applyAccounts(batch)).rejects.toMatchObject({ code: 'conflict' });
    expect(snapshot()).toBe(before);
  });
});
