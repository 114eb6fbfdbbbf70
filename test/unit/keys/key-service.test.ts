import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import {
  type Actor,
  type AuditEntry,
  type KeyService,
  MAX_EXPIRES_AT,
} from '../../../src/keys/key-service.js';
import type { Invalidation } from '../../../src/store/invalidation-bus.js';
import type { FakeClock } from '../../helpers/fake-clock.js';
import { keyServiceFixture } from '../../helpers/key-service-fixture.js';
import type { MemoryKeyStore } from '../../helpers/memory-key-store.js';

const ACTOR: Actor = {
  kind: 'key',
  account: 'root',
  keyId: 'ROOTKEY00001',
  scopes: new Set(['read', 'write', 'admin']),
};
const ROLES = { admin: ['read', 'write', 'admin'], member: ['read', 'write'], reader: ['read'] };

let store: MemoryKeyStore;
let clock: FakeClock;
let service: KeyService;
let events: Invalidation[];
let audit: AuditEntry[];

beforeEach(async () => {
  ({ store, clock, service, events, audit } = keyServiceFixture(ROLES));
  await service.createAccount(ACTOR, { name: 'ci', role: 'member' });
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'ok',
    (e: unknown) => (e instanceof KeygateError ? e.code : 'thrown'),
  );
}

describe('rotation', () => {
  it('default grace is 24 h; the new key keeps description, scopes and expiry', async () => {
    const old = await service.createKey(ACTOR, 'ci', {
      description: 'd',
      scopes: ['read'],
      expiresAt: clock.seconds + 30 * 86_400,
    });
    const next = await service.rotateKey(ACTOR, 'ci', old.id);
    expect(next).toMatchObject({ description: 'd', scopes: ['read'], expires_at: old.expires_at });
    expect(store.keys.get(old.id)).toMatchObject({
      expiresAt: clock.seconds + 86_400,
      replacedBy: next.id,
    });
    expect(events).toEqual([{ kind: 'key', id: old.id }]);
  });

  it('grace never extends a key past its own expiry', async () => {
    const old = await service.createKey(ACTOR, 'ci', {
      description: 'd',
      expiresAt: clock.seconds + 600,
    });
    await service.rotateKey(ACTOR, 'ci', old.id, 3600);
    expect(store.keys.get(old.id)?.expiresAt).toBe(clock.seconds + 600);
  });

  it('grace 0 expires the old key at once', async () => {
    const old = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await service.rotateKey(ACTOR, 'ci', old.id, 0);
    expect(store.keys.get(old.id)?.expiresAt).toBe(clock.seconds);
  });

  it.each([
    ['a revoked key', async (id: string) => service.revokeKey(ACTOR, 'ci', id)],
    ['an expired key', async () => clock.advance(3601_000)],
    [
      'a key already rotated',
      async (id: string) => void (await service.rotateKey(ACTOR, 'ci', id)),
    ],
  ])('refuses to rotate %s (409)', async (_name, prepare) => {
    const old = await service.createKey(ACTOR, 'ci', {
      description: 'd',
      expiresAt: clock.seconds + 3600,
    });
    await prepare(old.id);
    const before = store.keys.size;
    expect(await codeOf(service.rotateKey(ACTOR, 'ci', old.id))).toBe('conflict');
    expect(store.keys.size).toBe(before);
  });
});

describe('invalidations: every weakening write, and only those', () => {
  it('revoke, delete, disable and role change publish; a description change does not', async () => {
    const key = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await service.updateAccount(ACTOR, 'ci', { description: 'new words' });
    expect(events).toEqual([]);
    await service.revokeKey(ACTOR, 'ci', key.id);
    await service.updateAccount(ACTOR, 'ci', { role: 'reader' });
    await service.updateAccount(ACTOR, 'ci', { disabled: true });
    await service.deleteAccount(ACTOR, 'ci');
    expect(events).toEqual([
      { kind: 'key', id: key.id },
      { kind: 'account', name: 'ci' },
      { kind: 'account', name: 'ci' },
      { kind: 'account', name: 'ci' },
    ]);
  });

  it('revoke is idempotent and keeps the first time', async () => {
    const key = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await service.revokeKey(ACTOR, 'ci', key.id);
    const first = store.keys.get(key.id)?.revokedAt;
    clock.advance(60_000);
    await service.revokeKey(ACTOR, 'ci', key.id);
    expect(store.keys.get(key.id)?.revokedAt).toBe(first);
  });
});

describe('validation and audit', () => {
  it.each([
    [
      'bad account name',
      () => service.createAccount(ACTOR, { name: '-x', role: 'reader' }),
      'bad_request',
    ],
    [
      'unknown role',
      () => service.createAccount(ACTOR, { name: 'x', role: 'owner' }),
      'bad_request',
    ],
    [
      'duplicate account',
      () => service.createAccount(ACTOR, { name: 'ci', role: 'reader' }),
      'conflict',
    ],
    [
      'key for a missing account',
      () => service.createKey(ACTOR, 'ghost', { description: 'd' }),
      'not_found',
    ],
    [
      'expiry now',
      () => service.createKey(ACTOR, 'ci', { description: 'd', expiresAt: clock.seconds }),
      'bad_request',
    ],
    [
      'scope beyond the role',
      () => service.createKey(ACTOR, 'ci', { description: 'd', scopes: ['admin'] }),
      'bad_request',
    ],
    ['revoke a missing key', () => service.revokeKey(ACTOR, 'ci', 'AAAAAAAAAAAA'), 'not_found'],
    ['revoke with a malformed id', () => service.revokeKey(ACTOR, 'ci', '../../x'), 'not_found'],
    [
      'update to an unknown role',
      () => service.updateAccount(ACTOR, 'ci', { role: 'owner' }),
      'bad_request',
    ],
  ])('%s → %s, audited as an error', async (_name, call, code) => {
    expect(await codeOf(call())).toBe(code);
    expect(audit.at(-1)).toMatchObject({ actor: ACTOR, result: 'error', error: code });
  });

  it('audits successes with actor, action and target', async () => {
    const key = await service.createKey(ACTOR, 'ci', { description: 'd' });
    await service.revokeKey(ACTOR, 'ci', key.id);
    expect(audit.slice(-2)).toEqual([
      {
        actor: ACTOR,
        action: 'key.create',
        target: 'ci',
        result: 'ok',
        details: { keyId: key.id },
      },
      { actor: ACTOR, action: 'key.revoke', target: `ci/${key.id}`, result: 'ok' },
    ]);
    expect(JSON.stringify(audit)).not.toContain(key.key);
  });

  it('a rotation names the new key and the one it replaces; a failed one names neither', async () => {
    const old = await service.createKey(ACTOR, 'ci', { description: 'd' });
    const next = await service.rotateKey(ACTOR, 'ci', old.id, 60);
    expect(audit.at(-1)).toEqual({
      actor: ACTOR,
      action: 'key.rotate',
      target: `ci/${old.id}`,
      result: 'ok',
      details: { keyId: next.id, replacedKeyId: old.id },
    });
    await expect(service.rotateKey(ACTOR, 'ci', old.id, 60)).rejects.toThrow();
    expect(audit.at(-1)).toEqual({
      actor: ACTOR,
      action: 'key.rotate',
      target: `ci/${old.id}`,
      result: 'error',
      error: 'conflict',
    });
    expect(JSON.stringify(audit)).not.toContain(next.key);
  });

  it('a key of another account is not found through this one (no cross-account access)', async () => {
    await service.createAccount(ACTOR, { name: 'other', role: 'reader' });
    const theirs = await service.createKey(ACTOR, 'other', { description: 'd' });
    expect(await codeOf(service.revokeKey(ACTOR, 'ci', theirs.id))).toBe('not_found');
    expect(store.keys.get(theirs.id)?.revokedAt).toBe(0);
  });
});

describe('expires_at is bounded (an absurd value must not reach the store and break rendering)', () => {
  it.each([
    ['1e15', 1e15],
    ['one past 9999-12-31T23:59:59Z', MAX_EXPIRES_AT + 1],
    ['2^53 (not a safe integer)', 2 ** 53],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['NaN', Number.NaN],
    ['negative', -1],
  ])('%s → 400 naming the bound, nothing written', async (_name, expiresAt) => {
    const before = store.keys.size;
    const err = await service.createKey(ACTOR, 'ci', { description: 'd', expiresAt }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KeygateError);
    expect((err as KeygateError).code).toBe('bad_request');
    expect((err as KeygateError).message).toMatch(/expires_at: .*253402300799/);
    expect(store.keys.size).toBe(before);
  });

  it('9999-12-31T23:59:59Z itself is accepted', async () => {
    expect(MAX_EXPIRES_AT).toBe(Date.UTC(9999, 11, 31, 23, 59, 59) / 1000);
    const key = await service.createKey(ACTOR, 'ci', {
      description: 'd',
      expiresAt: MAX_EXPIRES_AT,
    });
    expect(key.expires_at).toBe(MAX_EXPIRES_AT);
  });
});

describe('invariant 3: an actor grants only what it holds', () => {
  const keyActor = (...scopes: string[]): Actor => ({
    kind: 'key',
    account: 'root',
    keyId: 'ROOTKEY00002',
    scopes: new Set(scopes),
  });
  const actors: Record<string, Actor> = {
    full: keyActor('read', 'write', 'admin'),
    narrow: keyActor('admin'),
    adminRead: keyActor('admin', 'read'),
    cli: { kind: 'cli', user: 'operator' },
  };

  /** boss: admin role with an unrestricted key; viewer: reader; ci (member) with a [read] key. */
  async function fixture() {
    const cli: Actor = { kind: 'cli', user: 'setup' };
    await service.createAccount(cli, { name: 'boss', role: 'admin' });
    await service.createAccount(cli, { name: 'viewer', role: 'reader' });
    await service.createAccount(cli, { name: 'parked', role: 'admin' });
    await service.updateAccount(cli, 'parked', { disabled: true });
    await service.createAccount(cli, { name: 'resting', role: 'reader' });
    await service.updateAccount(cli, 'resting', { disabled: true });
    const bossKey = await service.createKey(cli, 'boss', { description: 'all' });
    const ciKey = await service.createKey(cli, 'ci', { description: 'r', scopes: ['read'] });
    return { bossKey: bossKey.id, ciKey: ciKey.id };
  }

  type Row = [
    action: string,
    run: (actor: Actor, f: { bossKey: string; ciKey: string }) => Promise<unknown>,
    expected: { full: string; narrow: string; adminRead: string; cli: string },
  ];
  const ok = 'ok';
  const no = 'insufficient_scope';
  const rows: Row[] = [
    [
      'create an admin-role account',
      (a) => service.createAccount(a, { name: 'new', role: 'admin' }),
      { full: ok, narrow: no, adminRead: no, cli: ok },
    ],
    [
      'create a reader account',
      (a) => service.createAccount(a, { name: 'new', role: 'reader' }),
      { full: ok, narrow: no, adminRead: ok, cli: ok },
    ],
    [
      'raise a reader to admin',
      (a) => service.updateAccount(a, 'viewer', { role: 'admin' }),
      { full: ok, narrow: no, adminRead: no, cli: ok },
    ],
    [
      'downgrade an admin to reader',
      (a) => service.updateAccount(a, 'boss', { role: 'reader' }),
      { full: ok, narrow: no, adminRead: ok, cli: ok },
    ],
    [
      're-enable a disabled admin account',
      (a) => service.updateAccount(a, 'parked', { disabled: false }),
      { full: ok, narrow: no, adminRead: no, cli: ok },
    ],
    [
      're-enable a disabled reader account',
      (a) => service.updateAccount(a, 'resting', { disabled: false }),
      { full: ok, narrow: no, adminRead: ok, cli: ok },
    ],
    [
      're-enable a disabled admin account while downgrading it to reader',
      (a) => service.updateAccount(a, 'parked', { disabled: false, role: 'reader' }),
      { full: ok, narrow: no, adminRead: ok, cli: ok },
    ],
    [
      'disable an admin account',
      (a) => service.updateAccount(a, 'boss', { disabled: true }),
      { full: ok, narrow: ok, adminRead: ok, cli: ok },
    ],
    [
      "change an admin account's description",
      (a) => service.updateAccount(a, 'boss', { description: 'words' }),
      { full: ok, narrow: ok, adminRead: ok, cli: ok },
    ],
    [
      'mint an unrestricted key on an admin account',
      (a) => service.createKey(a, 'boss', { description: 'd' }),
      { full: ok, narrow: no, adminRead: no, cli: ok },
    ],
    [
      'mint an [admin] key on an admin account',
      (a) => service.createKey(a, 'boss', { description: 'd', scopes: ['admin'] }),
      { full: ok, narrow: ok, adminRead: ok, cli: ok },
    ],
    [
      'mint a [read] key on a member account',
      (a) => service.createKey(a, 'ci', { description: 'd', scopes: ['read'] }),
      { full: ok, narrow: no, adminRead: ok, cli: ok },
    ],
    [
      'mint a role-wide key on a member account',
      (a) => service.createKey(a, 'ci', { description: 'd' }),
      { full: ok, narrow: no, adminRead: no, cli: ok },
    ],
    [
      'rotate an unrestricted admin key',
      (a, f) => service.rotateKey(a, 'boss', f.bossKey),
      { full: ok, narrow: no, adminRead: no, cli: ok },
    ],
    [
      'rotate a [read] key',
      (a, f) => service.rotateKey(a, 'ci', f.ciKey),
      { full: ok, narrow: no, adminRead: ok, cli: ok },
    ],
    [
      'revoke an unrestricted admin key',
      (a, f) => service.revokeKey(a, 'boss', f.bossKey),
      { full: ok, narrow: ok, adminRead: ok, cli: ok },
    ],
    [
      'delete an admin account',
      (a) => service.deleteAccount(a, 'boss'),
      { full: ok, narrow: ok, adminRead: ok, cli: ok },
    ],
  ];

  for (const [action, run, expected] of rows) {
    for (const [actorName, actor] of Object.entries(actors)) {
      const want = expected[actorName as keyof typeof expected];
      it(`${actorName}: ${action} → ${want}`, async () => {
        const f = await fixture();
        const before = JSON.stringify([[...store.accounts], [...store.keys]]);
        const eventsBefore = events.length;
        expect(await codeOf(run(actor, f))).toBe(want);
        if (want === no) {
          // Refused before any write: the store and the caches are exactly as they were.
          expect(JSON.stringify([[...store.accounts], [...store.keys]])).toBe(before);
          expect(events.length).toBe(eventsBefore);
          expect(audit.at(-1)).toMatchObject({ actor, result: 'error', error: no });
        }
      });
    }
  }

  it('the refusal names the missing scopes and nothing secret', async () => {
    await fixture();
    const err = await service
      .createKey(actors.narrow as Actor, 'boss', { description: 'd' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeygateError);
    expect((err as KeygateError).status).toBe(403);
    expect((err as KeygateError).message).toMatch(/read, write/);
    expect((err as KeygateError).message).not.toMatch(/kg_/);
  });

  it('property: createKey succeeds for a key actor iff the new key’s effective scopes ⊆ the actor’s', async () => {
    const all = ['read', 'write', 'admin'];
    await fc.assert(
      fc.asyncProperty(
        fc.subarray(all),
        fc.constantFrom(...Object.keys(ROLES)),
        fc.option(fc.subarray(all), { nil: undefined }),
        async (held, role, asked) => {
          const name = `p-${role}`;
          if (!store.accounts.has(name)) {
            await service.createAccount({ kind: 'cli', user: 'setup' }, { name, role });
          }
          const roleScopes = ROLES[role as keyof typeof ROLES];
          const actor: Actor = {
            kind: 'key',
            account: 'root',
            keyId: 'ROOTKEY00003',
            scopes: new Set(held),
          };
          const code = await codeOf(
            service.createKey(actor, name, {
              description: 'p',
              ...(asked !== undefined ? { scopes: asked } : {}),
            }),
          );
          if (asked !== undefined && !asked.every((s) => roleScopes.includes(s))) {
            expect(code).toBe('bad_request'); // beyond the account's role: refused as before
            return;
          }
          const effective = asked ?? roleScopes;
          expect(code).toBe(effective.every((s) => held.includes(s)) ? 'ok' : 'insufficient_scope');
        },
      ),
      { numRuns: 200 },
    );
  });

  it('role names that are Object.prototype properties are unknown roles, not crashes', async () => {
    for (const role of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect(await codeOf(service.createAccount(actors.narrow as Actor, { name: 'x', role }))).toBe(
        'bad_request',
      );
      expect(await codeOf(service.updateAccount(actors.full as Actor, 'ci', { role }))).toBe(
        'bad_request',
      );
    }
  });
});

describe('account names are checked on every action', () => {
  it.each(['', '-x', 'A', '__proto__', '%C0', 'a/b', 'x}', 'a'.repeat(64)])(
    'delete %j → 404, the store is never asked',
    async (name) => {
      // A spy on the real store: a malformed name must never become a store key.
      const asked: string[] = [];
      const deleteAccount = store.deleteAccount.bind(store);
      store.deleteAccount = (n: string) => {
        asked.push(n);
        return deleteAccount(n);
      };
      const before = store.accounts.size;
      expect(await codeOf(service.deleteAccount(ACTOR, name))).toBe('not_found');
      expect(store.accounts.size).toBe(before);
      expect(asked).toEqual([]);
    },
  );
});

describe('account names that are Object.prototype properties are ordinary accounts', () => {
  it.each(['constructor', 'prototype'])('%s: create, show, key, delete', async (name) => {
    await service.createAccount(ACTOR, { name, role: 'reader' });
    const key = await service.createKey(ACTOR, name, { description: 'd' });
    expect((await service.getAccount(ACTOR, name)).keys.map((k) => k.id)).toEqual([key.id]);
    expect(await codeOf(service.getAccount(ACTOR, 'ci'))).toBe('ok');
    await service.deleteAccount(ACTOR, name);
    expect(await codeOf(service.getAccount(ACTOR, name))).toBe('not_found');
  });
});
