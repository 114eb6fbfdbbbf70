import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import { FILTER_KINDS } from '../../../src/keys/account-filters.js';
import type { Actor, AuditEntry, KeyService } from '../../../src/keys/key-service.js';
import type { Invalidation } from '../../../src/store/invalidation-bus.js';
import { keyServiceFixture } from '../../helpers/key-service-fixture.js';
import type { MemoryKeyStore } from '../../helpers/memory-key-store.js';

const ACTOR: Actor = { kind: 'cli', user: 'test' };
const ROLES = { admin: ['read', 'admin'], reader: ['read'] };
const TEAM_A = 'namespace:"team-a"';

let store: MemoryKeyStore;
let service: KeyService;
let events: Invalidation[];
let audit: AuditEntry[];

beforeEach(() => {
  ({ store, service, events, audit } = keyServiceFixture(ROLES));
});

async function refusal(p: Promise<unknown>): Promise<KeygateError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KeygateError);
  return err as KeygateError;
}

describe('account filters in KeyService', () => {
  it('create stores them and every view shows them; {} when none', async () => {
    const created = await service.createAccount(ACTOR, {
      name: 'team-a',
      role: 'reader',
      filters: { allocation: TEAM_A, cloudCost: 'label[team]:"a"' },
    });
    expect(created.filters).toEqual({ allocation: TEAM_A, cloudCost: 'label[team]:"a"' });
    expect(store.accounts.get('team-a')?.filters).toEqual(created.filters);
    const plain = await service.createAccount(ACTOR, { name: 'plain', role: 'reader' });
    expect(plain.filters).toEqual({});
    // `{}` on create stores no field at all.
    await service.createAccount(ACTOR, { name: 'empty', role: 'reader', filters: {} });
    expect(store.accounts.get('empty')).not.toHaveProperty('filters');
    expect((await service.getAccount(ACTOR, 'team-a')).filters).toEqual(created.filters);
    expect((await service.listAccounts(ACTOR)).map((a) => a.filters)).toEqual([
      {},
      {},
      created.filters,
    ]);
  });

  it('update replaces the whole set, {} clears it, and each change invalidates the account', async () => {
    await service.createAccount(ACTOR, { name: 'team-a', role: 'reader' });
    const set = await service.updateAccount(ACTOR, 'team-a', { filters: { allocation: TEAM_A } });
    expect(set.filters).toEqual({ allocation: TEAM_A });
    expect(events).toEqual([{ kind: 'account', name: 'team-a' }]);
    const replaced = await service.updateAccount(ACTOR, 'team-a', {
      filters: { assets: 'cluster:"c1"' },
    });
    expect(replaced.filters).toEqual({ assets: 'cluster:"c1"' });
    expect(events).toHaveLength(2);
    // The same filters again, or a description change: nothing cached needs to go.
    await service.updateAccount(ACTOR, 'team-a', { filters: { assets: 'cluster:"c1"' } });
    await service.updateAccount(ACTOR, 'team-a', { description: 'x' });
    expect(events).toHaveLength(2);
    expect((await service.getAccount(ACTOR, 'team-a')).filters).toEqual({ assets: 'cluster:"c1"' });
    const cleared = await service.updateAccount(ACTOR, 'team-a', { filters: {} });
    expect(cleared.filters).toEqual({});
    expect(store.accounts.get('team-a')).not.toHaveProperty('filters');
    expect(events).toEqual([
      { kind: 'account', name: 'team-a' },
      { kind: 'account', name: 'team-a' },
      { kind: 'account', name: 'team-a' },
    ]);
  });

  it.each<[string, unknown, RegExp]>([
    ['an unknown kind', { cost: TEAM_A }, /^filters\.cost: unknown filter kind/],
    ['__proto__', JSON.parse(`{"__proto__": "${'x'}"}`), /^filters\.__proto__: unknown/],
    ['an invalid expression', { allocation: 'namespace:"a' }, /^filters\.allocation: not a valid/],
    ['an empty expression', { assets: '' }, /^filters\.assets: empty/],
    ['a huge expression', { assets: `a:"${'x'.repeat(5000)}"` }, /^filters\.assets: at most 4096/],
    ['a non-string', { assets: ['a'] }, /^filters\.assets: expected a filter expression/],
  ])(
    'refuses %s with bad_request naming the field; writes and invalidates nothing',
    async (_w, filters, message) => {
      const onCreate = await refusal(
        service.createAccount(ACTOR, { name: 'team-a', role: 'reader', filters }),
      );
      expect(onCreate.code).toBe('bad_request');
      expect(onCreate.message).toMatch(message);
      expect(store.accounts.has('team-a')).toBe(false);
      await service.createAccount(ACTOR, {
        name: 'team-a',
        role: 'reader',
        filters: { allocation: TEAM_A },
      });
      const onUpdate = await refusal(
        service.updateAccount(ACTOR, 'team-a', { role: 'admin', filters }),
      );
      expect(onUpdate.code).toBe('bad_request');
      expect(onUpdate.message).toMatch(message);
      // Nothing of the refused update was written, not even the role beside it.
      expect(store.accounts.get('team-a')).toMatchObject({
        role: 'reader',
        filters: { allocation: TEAM_A },
      });
      expect(events).toEqual([]);
      expect(audit.at(-1)).toMatchObject({ action: 'account.update', result: 'error' });
    },
  );

  it('property: an update either stores exactly the valid filters it was given, or changes nothing', async () => {
    await service.createAccount(ACTOR, {
      name: 'team-a',
      role: 'reader',
      filters: { allocation: TEAM_A },
    });
    const kind = fc.oneof(
      fc.constantFrom(...FILTER_KINDS),
      fc.constantFrom('__proto__', 'constructor', 'Allocation', 'cloudcost', 'ASSETS', ''),
      fc.string({ maxLength: 10 }),
    );
    const value = fc.oneof(
      fc.constantFrom(TEAM_A, 'cluster:"c1"', '(namespace:"a")|(namespace:"b")', '', '"', ')('),
      fc.string({ maxLength: 30 }),
      fc.integer(),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(kind, value), { maxLength: 4 }), async (entries) => {
        const filters = JSON.parse(JSON.stringify(Object.fromEntries(entries))) as unknown;
        const before = store.accounts.get('team-a');
        const eventsBefore = events.length;
        try {
          const view = await service.updateAccount(ACTOR, 'team-a', { filters });
          expect(view.filters).toEqual(filters);
          for (const k of Object.keys(view.filters))
            expect(FILTER_KINDS as readonly string[]).toContain(k);
        } catch (err) {
          expect((err as KeygateError).code).toBe('bad_request');
          expect((err as KeygateError).message).toMatch(/^filters(\.|:)/);
          expect(store.accounts.get('team-a')).toBe(before);
          expect(events.length).toBe(eventsBefore);
        }
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
    );
  });
});

describe('account filters in keygate apply', () => {
  const file = (filters?: unknown) => ({
    accounts: [{ name: 'team-a', role: 'reader', ...(filters === undefined ? {} : { filters }) }],
  });

  it('creates with filters, diffs a change, invalidates, and removes filters left out', async () => {
    const created = await service.applyAccounts(ACTOR, file({ allocation: TEAM_A }));
    expect(created.changes[0]?.diff).toContainEqual({
      field: 'filters',
      from: null,
      to: { allocation: TEAM_A },
    });
    expect(store.accounts.get('team-a')?.filters).toEqual({ allocation: TEAM_A });
    expect((await service.applyAccounts(ACTOR, file({ allocation: TEAM_A }))).changes).toEqual([]);
    events.length = 0;
    const changed = await service.applyAccounts(ACTOR, file({ assets: 'cluster:"c1"' }));
    expect(changed.changes).toEqual([
      {
        action: 'account.update',
        account: 'team-a',
        diff: [{ field: 'filters', from: { allocation: TEAM_A }, to: { assets: 'cluster:"c1"' } }],
      },
    ]);
    expect(events).toContainEqual({ kind: 'account', name: 'team-a' });
    // The file is the truth for the accounts it manages: no filters there, none stored.
    const removed = await service.applyAccounts(ACTOR, file());
    expect(removed.changes[0]?.diff).toEqual([
      { field: 'filters', from: { assets: 'cluster:"c1"' }, to: {} },
    ]);
    expect(store.accounts.get('team-a')).not.toHaveProperty('filters');
  });

  it('an unfiltered account reads as before: no filters line in its create diff', async () => {
    const created = await service.applyAccounts(ACTOR, file());
    expect(created.changes[0]?.diff?.map((d) => d.field)).toEqual([
      'role',
      'description',
      'disabled',
    ]);
  });

  it.each<[unknown, RegExp]>([
    [{ cost: 'a:"b"' }, /^accounts\[0\]\.filters\.cost: unknown filter kind/],
    [{ allocation: '(a:"b"' }, /^accounts\[0\]\.filters\.allocation: not a valid/],
    ['namespace:"a"', /^accounts\[0\]\.filters: expected a mapping/],
    [JSON.parse('{"__proto__": "x"}'), /^accounts\[0\]\.filters\.__proto__: unknown/],
  ])(
    'refuses invalid filters in the file by path (%j), writing nothing',
    async (filters, message) => {
      const err = await refusal(service.applyAccounts(ACTOR, file(filters)));
      expect(err.code).toBe('bad_request');
      expect(err.message).toMatch(message);
      expect(store.accounts.size).toBe(0);
    },
  );
});
