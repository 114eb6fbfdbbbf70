import { beforeEach, describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import { type AuditEntry, KeyService } from '../../../src/keys/key-service.js';
import { VerifyPool } from '../../../src/keys/verify-pool.js';
import type { Invalidation } from '../../../src/store/invalidation-bus.js';
import { MemoryKeyStore } from '../../../src/store/memory-key-store.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { FastHasher } from '../../helpers/fast-hasher.js';

const ACTOR = { kind: 'key', account: 'root', keyId: 'ROOTKEY00001' } as const;
const ROLES = { admin: ['read', 'write', 'admin'], member: ['read', 'write'], reader: ['read'] };

let store: MemoryKeyStore;
let clock: FakeClock;
let service: KeyService;
let events: Invalidation[];
let audit: AuditEntry[];

beforeEach(async () => {
  store = new MemoryKeyStore();
  clock = new FakeClock();
  events = [];
  audit = [];
  service = new KeyService({
    store,
    hasher: new FastHasher(),
    pool: new VerifyPool(2, 8),
    clock,
    prefix: 'kg',
    roles: ROLES,
    invalidate: async (event) => {
      events.push(event);
    },
    audit: (entry) => audit.push(entry),
  });
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
      { actor: ACTOR, action: 'key.create', target: 'ci', result: 'ok' },
      { actor: ACTOR, action: 'key.revoke', target: `ci/${key.id}`, result: 'ok' },
    ]);
    expect(JSON.stringify(audit)).not.toContain(key.key);
  });

  it('a key of another account is not found through this one (no cross-account access)', async () => {
    await service.createAccount(ACTOR, { name: 'other', role: 'reader' });
    const theirs = await service.createKey(ACTOR, 'other', { description: 'd' });
    expect(await codeOf(service.revokeKey(ACTOR, 'ci', theirs.id))).toBe('not_found');
    expect(store.keys.get(theirs.id)?.revokedAt).toBe(0);
  });
});
