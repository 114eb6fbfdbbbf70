import { KeygateError } from '../errors.js';
import type { AccountsBatch, BatchKeyChange } from '../store/accounts-batch.js';
import type { Invalidation } from '../store/invalidation-bus.js';
import type { AccountRecord, KeyRecord, KeyStore } from '../store/key-store.js';
import { copyFilters, isFiltered, sameFilters } from './account-filters.js';
import type { DesiredAccount, DesiredKey } from './accounts-file.js';

/** One line of apply's diff; `diff` names each changed field with its old and new value. */
export interface ApplyChange {
  action:
    | 'account.create'
    | 'account.update'
    | 'account.delete'
    | 'key.import'
    | 'key.update'
    | 'key.revoke';
  account: string;
  key_id?: string;
  diff?: Array<{ field: string; from: unknown; to: unknown }>;
}

export interface ApplyPlan {
  changes: ApplyChange[];
  batch: AccountsBatch;
  invalidations: Invalidation[];
  /** Listed keys apply leaves alone, and why (revoked, rotated, already expired). */
  warnings: string[];
  /** Roles and key scopes the plan grants, for a key actor's bound (invariant 3). */
  grants: Array<{ what: string; scopes: readonly string[] | null; role: string }>;
}

function conflict(path: string, message: string): KeygateError {
  return new KeygateError('conflict', `${path}: ${message}`);
}

function sameScopes(a: readonly string[] | null, b: readonly string[] | null): boolean {
  if (a === null || b === null) return a === b;
  return [...a].sort().join('\n') === [...b].sort().join('\n');
}

/**
 * The diff between the validated file and the store. Reads only. An account apply did not
 * create is never touched: a file entry with its name is refused (conflict), and prune never
 * sees it.
 */
export async function planAccounts(
  store: KeyStore,
  desired: readonly DesiredAccount[],
  now: number,
  prune: boolean,
): Promise<ApplyPlan> {
  const plan: ApplyPlan = {
    changes: [],
    batch: {
      createAccounts: [],
      updateAccounts: [],
      deleteAccounts: [],
      createKeys: [],
      updateKeys: [],
    },
    invalidations: [],
    warnings: [],
    grants: [],
  };
  for (const [index, want] of desired.entries()) {
    const path = `accounts[${index}]`;
    const stored = await store.getAccount(want.name);
    if (stored !== null && stored.managed !== true) {
      throw conflict(
        `${path}.name`,
        `service account "${want.name}" exists and was not created by keygate apply; apply never takes over an account made by hand (rename the entry, or delete the account first)`,
      );
    }
    if (stored === null) {
      const account: AccountRecord = {
        name: want.name,
        role: want.role,
        description: want.description,
        disabled: want.disabled,
        createdAt: now,
        updatedAt: now,
        managed: true,
        ...(isFiltered(want.filters) ? { filters: copyFilters(want.filters) } : {}),
      };
      plan.batch.createAccounts.push(account);
      plan.changes.push({
        action: 'account.create',
        account: want.name,
        diff: [
          { field: 'role', from: null, to: want.role },
          { field: 'description', from: null, to: want.description },
          { field: 'disabled', from: null, to: want.disabled },
          // Only when set: an unfiltered account's line reads as it did before filters existed.
          ...(isFiltered(want.filters)
            ? [{ field: 'filters', from: null, to: copyFilters(want.filters) }]
            : []),
        ],
      });
      plan.grants.push({ what: `account "${want.name}"`, scopes: null, role: want.role });
    } else {
      const diff = (['role', 'description', 'disabled'] as const)
        .filter((f) => stored[f] !== want[f])
        .map((f): { field: string; from: unknown; to: unknown } => ({
          field: f,
          from: stored[f],
          to: want[f],
        }));
      if (!sameFilters(stored.filters, want.filters)) {
        diff.push({
          field: 'filters',
          from: copyFilters(stored.filters),
          to: copyFilters(want.filters),
        });
      }
      if (diff.length > 0) {
        const { filters: _replaced, ...unfiltered } = stored;
        // A filters change also goes through the invalidation below: cached principals carry them.
        const next: AccountRecord = {
          ...unfiltered,
          role: want.role,
          description: want.description,
          disabled: want.disabled,
          updatedAt: now,
          ...(isFiltered(want.filters) ? { filters: copyFilters(want.filters) } : {}),
        };
        plan.batch.updateAccounts.push({ expected: stored, next });
        plan.changes.push({ action: 'account.update', account: want.name, diff });
        plan.invalidations.push({ kind: 'account', name: want.name });
        plan.grants.push({ what: `account "${want.name}"`, scopes: null, role: want.role });
      }
    }
    const listed = new Set<string>();
    for (const [keyIndex, key] of want.keys.entries()) {
      listed.add(key.id);
      await planKey(store, plan, want, key, `${path}.keys[${keyIndex}]`, now);
    }
    if (prune && stored !== null) {
      for (const key of await store.listKeys(want.name)) {
        if (listed.has(key.id) || key.revokedAt > 0) continue;
        plan.batch.updateKeys.push({ expected: key, change: { revokedAt: now } });
        plan.changes.push({ action: 'key.revoke', account: want.name, key_id: key.id });
        plan.invalidations.push({ kind: 'key', id: key.id });
      }
    }
  }
  if (prune) {
    const wanted = new Set(desired.map((a) => a.name));
    for (const account of await store.listAccounts()) {
      if (account.managed !== true || wanted.has(account.name)) continue;
      const keyIds = (await store.listKeys(account.name)).map((k) => k.id);
      plan.batch.deleteAccounts.push({ expected: account, keyIds });
      plan.changes.push({ action: 'account.delete', account: account.name });
      plan.invalidations.push({ kind: 'account', name: account.name });
    }
  }
  return plan;
}

async function planKey(
  store: KeyStore,
  plan: ApplyPlan,
  account: DesiredAccount,
  key: DesiredKey,
  path: string,
  now: number,
): Promise<void> {
  const stored = await store.getKey(key.id);
  if (stored === null) {
    if (key.expiresAt !== 0 && key.expiresAt <= now) {
      // Imported, it could never verify; and a file in git must not start failing the day
      // one of its keys expires.
      plan.warnings.push(`${path}: key ${key.id} has expired; not imported`);
      return;
    }
    const record: KeyRecord = {
      id: key.id,
      account: account.name,
      hash: key.hash,
      description: key.description,
      scopes: key.scopes,
      createdAt: now,
      expiresAt: key.expiresAt,
      revokedAt: 0,
      lastUsedAt: 0,
      replacedBy: '',
      generation: 1,
    };
    plan.batch.createKeys.push(record);
    plan.changes.push({
      action: 'key.import',
      account: account.name,
      key_id: key.id,
      diff: [
        { field: 'description', from: null, to: key.description },
        { field: 'expires_at', from: null, to: key.expiresAt },
        { field: 'scopes', from: null, to: key.scopes },
      ],
    });
    plan.grants.push({ what: `key ${key.id}`, scopes: key.scopes, role: account.role });
    // A replica may hold a refusal of this id from before the import (someone tried the key
    // early): dropped, so the key works at once everywhere, as a created key does.
    plan.invalidations.push({ kind: 'key', id: key.id });
    return;
  }
  if (stored.account !== account.name) {
    // Reported like a taken id, whoever owns it: the file must not learn other accounts' keys.
    throw conflict(`${path}.id`, `key id ${key.id} is already taken; mint a new key`);
  }
  if (stored.hash !== key.hash) {
    throw conflict(
      `${path}.hash`,
      `differs from the stored hash of key ${key.id}; a key's hash never changes: mint a new key (new id) and remove this one`,
    );
  }
  if (stored.revokedAt > 0) {
    plan.warnings.push(
      `${path}: key ${key.id} is revoked and stays revoked (revocation is final); remove it from the file`,
    );
    return;
  }
  if (stored.replacedBy !== '') {
    plan.warnings.push(
      `${path}: key ${key.id} was rotated into ${stored.replacedBy}; apply leaves it to its grace period`,
    );
    return;
  }
  const change: { -readonly [K in keyof BatchKeyChange]: BatchKeyChange[K] } = {};
  const diff: Array<{ field: string; from: unknown; to: unknown }> = [];
  if (stored.description !== key.description) {
    change.description = key.description;
    diff.push({ field: 'description', from: stored.description, to: key.description });
  }
  if (stored.expiresAt !== key.expiresAt) {
    change.expiresAt = key.expiresAt;
    diff.push({ field: 'expires_at', from: stored.expiresAt, to: key.expiresAt });
  }
  if (!sameScopes(stored.scopes, key.scopes)) {
    change.scopes = key.scopes;
    diff.push({ field: 'scopes', from: stored.scopes, to: key.scopes });
  }
  if (diff.length === 0) return;
  plan.batch.updateKeys.push({ expected: stored, change });
  plan.changes.push({ action: 'key.update', account: account.name, key_id: key.id, diff });
  plan.invalidations.push({ kind: 'key', id: key.id });
  plan.grants.push({ what: `key ${key.id}`, scopes: key.scopes, role: account.role });
}
