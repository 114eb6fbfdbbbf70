import { KeygateError } from '../errors.js';
import { type Clock, unixSeconds } from '../shared/clock.js';
import { ownEntry } from '../shared/null-proto-record.js';
import { isEmptyBatch } from '../store/accounts-batch.js';
import type { Invalidation } from '../store/invalidation-bus.js';
import type { AccountRateLimit, AccountRecord, KeyRecord, KeyStore } from '../store/key-store.js';
import {
  type AccountFilters,
  checkFilters,
  copyFilters,
  isFiltered,
  sameFilters,
} from './account-filters.js';
import {
  checkRateLimit,
  type RateLimitView,
  rateLimitView,
  sameRateLimit,
} from './account-rate-limit.js';
import {
  ACCOUNT_NAME,
  MAX_DESCRIPTION,
  MAX_EXPIRES_AT,
  validateAccounts,
} from './accounts-file.js';
import { type ApplyChange, planAccounts } from './apply-accounts.js';
import type { Hasher } from './hasher.js';
import { listExpiringKeys } from './key-expiry.js';
import { generateKey, isValidKeyId } from './key-format.js';
import type { VerifyPool } from './verify-pool.js';

// One definition of names, description and expiry limits, shared with the accounts file.
export { ACCOUNT_NAME, MAX_EXPIRES_AT };

const DEFAULT_GRACE_SECONDS = 86_400;
/** A rotation grace longer than this is almost certainly a unit mistake. */
export const MAX_GRACE_SECONDS = 90 * 86_400;

/** What both the key service and the verifier are built from. */
export interface KeyDeps {
  store: KeyStore;
  hasher: Hasher;
  pool: VerifyPool;
  clock: Clock;
  prefix: string;
  roles: Readonly<Record<string, readonly string[]>>;
}

/**
 * Who asked: an admin key over HTTP, or an operator at the CLI. A key actor carries its
 * effective scopes, because whatever it grants is bounded by them (DESIGN §12, invariant 3).
 * The CLI actor is not bounded: it already holds the store itself.
 */
export type Actor =
  | {
      kind: 'key';
      account: string;
      keyId: string;
      scopes: ReadonlySet<string>;
      /** The admin API request this action serves, so its audit line joins the access line. */
      requestId?: string;
    }
  | { kind: 'cli'; user: string };

/** What an action produced that the audit trail must name (never the key itself). */
export interface AuditDetails {
  /** key.create, key.rotate: the id of the key just issued. */
  keyId?: string;
  /** key.rotate: the id of the key it replaces. */
  replacedKeyId?: string;
}

export interface AuditEntry {
  actor: Actor;
  action: string;
  target: string;
  result: 'ok' | 'error';
  error?: string;
  details?: AuditDetails;
}

export interface KeyServiceDeps extends KeyDeps {
  /** Drops cached verdicts here and on every replica. */
  invalidate(event: Invalidation): Promise<void>;
  audit(entry: AuditEntry): void;
}

export interface AccountView {
  name: string;
  role: string;
  description: string;
  disabled: boolean;
  created_at: number;
  updated_at: number;
  /** The account's own quota; null: its role's default from config applies (DESIGN §16). */
  rate_limit: RateLimitView | null;
  /** Always present: `{}` when the account is not filtered. */
  filters: AccountFilters;
}

export type KeyStatus = 'active' | 'rotating' | 'expired' | 'revoked';

export interface KeyView {
  id: string;
  description: string;
  scopes: readonly string[] | null;
  created_at: number;
  expires_at: number;
  last_used_at: number;
  revoked_at: number;
  replaced_by: string;
  status: KeyStatus;
  /** Requests admitted with the key, summed over replicas; written every few seconds. */
  request_count: number;
}

/** The only time the key itself exists outside the caller's hands. */
export interface IssuedKey {
  id: string;
  key: string;
  account: string;
  description: string;
  scopes: readonly string[] | null;
  created_at: number;
  expires_at: number;
}

export interface CreateAccountInput {
  name: string;
  role: string;
  description?: string | undefined;
  rateLimit?: AccountRateLimit | null | undefined;
  /** Checked by checkFilters (so of any shape from a client); absent = not filtered. */
  filters?: unknown;
}

export interface UpdateAccountInput {
  role?: string | undefined;
  description?: string | undefined;
  disabled?: boolean | undefined;
  /** null clears the account's own quota. */
  rateLimit?: AccountRateLimit | null | undefined;
  /** Replaces the whole set; `{}` clears it. Checked by checkFilters. */
  filters?: unknown;
}

export interface CreateKeyInput {
  description: string;
  /** Unix seconds; 0 or absent = never. */
  expiresAt?: number | undefined;
  scopes?: readonly string[] | undefined;
}

export interface ApplyOptions {
  dryRun?: boolean | undefined;
  prune?: boolean | undefined;
}

export interface ApplyResult {
  changes: ApplyChange[];
  /** Listed keys left alone, and why; never a reason to fail. */
  warnings: string[];
}

/** Concurrent writers make a planned batch stale; apply re-plans this many times, then fails. */
const APPLY_ATTEMPTS = 3;

/** key.create: the audit line names the new key's id. */
function issuedDetails(issued: IssuedKey): AuditDetails {
  return { keyId: issued.id };
}

/**
 * Accounts and keys: validation, the writes behind them, invalidation of cached verdicts and
 * the audit trail. Shared by the admin API and the CLI, so both produce the same store state.
 */
export class KeyService {
  /** Role → scopes; replaced by a config reload (setRoles). */
  private roles: KeyDeps['roles'];

  constructor(private readonly deps: KeyServiceDeps) {
    this.roles = deps.roles;
  }

  /** A config reload's roles: what new grants are checked against from now on. */
  setRoles(roles: KeyDeps['roles']): void {
    this.roles = roles;
  }

  createAccount(actor: Actor, input: CreateAccountInput): Promise<AccountView> {
    return this.audited(actor, 'account.create', input.name, async () => {
      checkName(input.name);
      this.checkRole(input.role);
      const filters = input.filters === undefined ? undefined : checkFilters(input.filters);
      this.bound(actor, this.roleScopes(input.role), `role "${input.role}"`);
      const now = this.now();
      const rateLimit = input.rateLimit == null ? undefined : checkRateLimit(input.rateLimit);
      const account: AccountRecord = {
        name: input.name,
        role: input.role,
        description: checkDescription(input.description ?? '', false),
        disabled: false,
        createdAt: now,
        updatedAt: now,
        ...(rateLimit !== undefined ? { rateLimit } : {}),
        ...(isFiltered(filters) ? { filters } : {}),
      };
      await this.deps.store.createAccount(account);
      return accountView(account);
    });
  }

  listAccounts(actor: Actor): Promise<AccountView[]> {
    return this.audited(actor, 'account.list', '*', async () =>
      (await this.deps.store.listAccounts()).map(accountView),
    );
  }

  getAccount(actor: Actor, name: string): Promise<AccountView & { keys: KeyView[] }> {
    return this.audited(actor, 'account.show', name, async () => {
      const account = await this.requireAccount(name);
      const keys = await this.deps.store.listKeys(name);
      return { ...accountView(account), keys: keys.map((k) => this.keyView(k)) };
    });
  }

  updateAccount(actor: Actor, name: string, input: UpdateAccountInput): Promise<AccountView> {
    return this.audited(actor, 'account.update', name, async () => {
      if (input.role !== undefined) this.checkRole(input.role);
      const description =
        input.description === undefined ? undefined : checkDescription(input.description, false);
      const rateLimit = input.rateLimit == null ? input.rateLimit : checkRateLimit(input.rateLimit);
      const filters = input.filters === undefined ? undefined : checkFilters(input.filters);
      const before = await this.requireAccount(name);
      if (input.role !== undefined) {
        this.bound(actor, this.roleScopes(input.role), `role "${input.role}"`);
      }
      // Enabling an account hands its role's rights back to every key of it, so it is a grant
      // too. Checked on every `disabled: false`, not only when the account is disabled now: the
      // account record has no generation to compare, and a disable racing this write must not
      // turn a harmless no-op into a re-enable the actor could not have asked for.
      if (input.disabled === false) {
        const role = input.role ?? before.role;
        this.bound(actor, this.roleScopes(role), `enabling an account with role "${role}"`);
      }
      const updated = await this.deps.store.updateAccount(name, {
        ...(input.role !== undefined ? { role: input.role } : {}),
        ...(description !== undefined ? { description } : {}),
        ...(input.disabled !== undefined ? { disabled: input.disabled } : {}),
        ...(rateLimit !== undefined ? { rateLimit } : {}),
        ...(filters !== undefined ? { filters } : {}),
        updatedAt: this.now(),
      });
      // A role change or a disable can take rights away, and a cached principal carries the
      // quota and the filters it was verified with: every replica must forget what it cached.
      if (
        updated.role !== before.role ||
        updated.disabled !== before.disabled ||
        !sameRateLimit(updated.rateLimit, before.rateLimit) ||
        !sameFilters(updated.filters, before.filters)
      ) {
        await this.deps.invalidate({ kind: 'account', name });
      }
      return accountView(updated);
    });
  }

  deleteAccount(actor: Actor, name: string): Promise<void> {
    return this.audited(actor, 'account.delete', name, async () => {
      // The name becomes a store key: a malformed one is a missing account, never a store call.
      if (!ACCOUNT_NAME.test(name)) throw missingAccount(name);
      await this.deps.store.deleteAccount(name);
      await this.deps.invalidate({ kind: 'account', name });
    });
  }

  createKey(actor: Actor, accountName: string, input: CreateKeyInput): Promise<IssuedKey> {
    return this.auditedWith(actor, 'key.create', accountName, issuedDetails, async () => {
      const description = checkDescription(input.description, true);
      const expiresAt = this.checkExpiry(input.expiresAt ?? 0);
      const account = await this.requireAccount(accountName);
      const scopes = this.checkScopes(account, input.scopes);
      // Refused rather than silently narrowed: a key that quietly lacks what was asked for
      // fails later, far from the cause.
      this.bound(actor, scopes ?? this.roleScopes(account.role), 'the new key');
      const record = await this.newKeyRecord(account.name, description, scopes, expiresAt);
      await this.deps.store.createKey(record.record);
      return record.issued;
    });
  }

  listKeys(actor: Actor, accountName: string): Promise<KeyView[]> {
    return this.audited(actor, 'key.list', accountName, async () => {
      await this.requireAccount(accountName);
      return (await this.deps.store.listKeys(accountName)).map((k) => this.keyView(k));
    });
  }

  /**
   * Keys that still work and expire within `withinSeconds`, soonest first: of one account, or
   * of every account when none is named (`keygate keys list --expiring 7d`).
   */
  listExpiringKeys(
    actor: Actor,
    accountName: string | undefined,
    withinSeconds: number,
  ): Promise<Array<KeyView & { account: string }>> {
    return this.audited(actor, 'key.list', accountName ?? '*', async () => {
      if (accountName !== undefined) await this.requireAccount(accountName);
      const keys = await listExpiringKeys(this.deps.store, this.now(), withinSeconds, accountName);
      return keys.map((k) => ({ account: k.account, ...this.keyView(k) }));
    });
  }

  /** Idempotent: revoking a revoked key succeeds and keeps the first revocation time. */
  revokeKey(actor: Actor, accountName: string, id: string): Promise<void> {
    return this.audited(actor, 'key.revoke', `${accountName}/${id}`, async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const key = await this.requireKey(accountName, id);
        if (key.revokedAt > 0) break;
        try {
          await this.deps.store.updateKey(id, key.generation, { revokedAt: this.now() });
          break;
        } catch (err) {
          // Someone else changed the key meanwhile (a last-use touch does not count): read again.
          if (!(err instanceof KeygateError && err.code === 'conflict') || attempt === 4) throw err;
        }
      }
      await this.deps.invalidate({ kind: 'key', id });
    });
  }

  /**
   * Issues a replacement with the same description and scopes, and lets the old key live on
   * for `graceSeconds` (never past its own expiry). One rotation per key: a concurrent or
   * repeated rotation of the same key gets 409 instead of a second replacement.
   */
  rotateKey(
    actor: Actor,
    accountName: string,
    id: string,
    graceSeconds = DEFAULT_GRACE_SECONDS,
  ): Promise<IssuedKey> {
    const details = (issued: IssuedKey) => ({ keyId: issued.id, replacedKeyId: id });
    return this.auditedWith(actor, 'key.rotate', `${accountName}/${id}`, details, async () => {
      if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
        throw new KeygateError(
          'bad_request',
          `grace_seconds: expected an integer from 0 to ${MAX_GRACE_SECONDS}`,
        );
      }
      const account = await this.requireAccount(accountName);
      const old = await this.requireKey(accountName, id);
      const now = this.now();
      const status = keyStatus(old, now);
      if (status === 'revoked' || status === 'expired') {
        throw new KeygateError('conflict', `key ${id} is ${status}; create a new key instead`);
      }
      if (status === 'rotating') {
        throw new KeygateError(
          'conflict',
          `key ${id} has already been rotated; rotate its replacement instead`,
        );
      }
      const scopes = old.scopes === null ? null : this.checkScopes(account, old.scopes);
      // The replacement is a fresh key with the old one's rights: a narrowed admin must not
      // turn a wider key it does not hold into a new one it now does.
      this.bound(actor, scopes ?? this.roleScopes(account.role), 'the replacement key');
      const { record, issued } = await this.newKeyRecord(
        account.name,
        old.description,
        scopes,
        old.expiresAt,
      );
      const graceEnd = now + graceSeconds;
      const oldExpiresAt = old.expiresAt > 0 ? Math.min(old.expiresAt, graceEnd) : graceEnd;
      await this.deps.store.rotateKey(id, old.generation, record, oldExpiresAt);
      // The old key's expiry moved closer: cached verdicts must pick that up.
      await this.deps.invalidate({ kind: 'key', id });
      return issued;
    });
  }

  /**
   * `keygate apply` (DESIGN §14): validates `desired` (the parsed accounts file) whole, diffs
   * it against the store and, unless `dryRun`, writes every change in one atomic store step
   * (KeyStore.applyAccounts), then publishes the invalidations revokeKey and updateAccount
   * would, and audits each change. Running it again with the same file changes nothing.
   */
  applyAccounts(actor: Actor, desired: unknown, options: ApplyOptions = {}): Promise<ApplyResult> {
    const target = options.dryRun ? 'dry-run' : options.prune ? 'prune' : 'apply';
    return this.audited(actor, 'accounts.apply', target, async () => {
      const accounts = validateAccounts(desired, {
        roles: this.roles,
        prefix: this.deps.prefix,
      });
      for (let attempt = 1; ; attempt++) {
        const plan = await planAccounts(
          this.deps.store,
          accounts,
          this.now(),
          options.prune === true,
        );
        for (const grant of plan.grants) {
          this.bound(actor, grant.scopes ?? this.roleScopes(grant.role), grant.what);
        }
        const result = { changes: plan.changes, warnings: plan.warnings };
        if (options.dryRun || isEmptyBatch(plan.batch)) return result;
        try {
          await this.deps.store.applyAccounts(plan.batch);
        } catch (err) {
          // Someone wrote a record the plan read: plan again from what is there now.
          if (err instanceof KeygateError && err.code === 'conflict' && attempt < APPLY_ATTEMPTS)
            continue;
          throw err;
        }
        for (const event of plan.invalidations) await this.deps.invalidate(event);
        for (const change of plan.changes) {
          this.deps.audit({
            actor,
            action: change.action,
            target:
              change.key_id === undefined ? change.account : `${change.account}/${change.key_id}`,
            result: 'ok',
            ...(change.key_id === undefined ? {} : { details: { keyId: change.key_id } }),
          });
        }
        return result;
      }
    });
  }

  private async newKeyRecord(
    account: string,
    description: string,
    scopes: readonly string[] | null,
    expiresAt: number,
  ): Promise<{ record: KeyRecord; issued: IssuedKey }> {
    const { hasher, pool, prefix } = this.deps;
    const generated = generateKey(prefix);
    const hash = await pool.run(() => hasher.hash(generated.full));
    const now = this.now();
    const record: KeyRecord = {
      id: generated.id,
      account,
      hash,
      description,
      scopes,
      createdAt: now,
      expiresAt,
      revokedAt: 0,
      lastUsedAt: 0,
      replacedBy: '',
      generation: 1,
    };
    const issued: IssuedKey = {
      id: record.id,
      key: generated.full,
      account,
      description,
      scopes,
      created_at: now,
      expires_at: expiresAt,
    };
    return { record, issued };
  }

  private audited<T>(
    actor: Actor,
    action: string,
    target: string,
    run: () => Promise<T>,
  ): Promise<T> {
    return this.auditedWith(actor, action, target, undefined, run);
  }

  /** As audited, and a successful line also names what `details` reads off the result. */
  private async auditedWith<T>(
    actor: Actor,
    action: string,
    target: string,
    details: ((result: T) => AuditDetails) | undefined,
    run: () => Promise<T>,
  ): Promise<T> {
    try {
      const result = await run();
      this.deps.audit({
        actor,
        action,
        target,
        result: 'ok',
        ...(details === undefined ? {} : { details: details(result) }),
      });
      return result;
    } catch (err) {
      this.deps.audit({
        actor,
        action,
        target,
        result: 'error',
        error: err instanceof KeygateError ? err.code : 'internal_error',
      });
      throw err;
    }
  }

  private async requireAccount(name: string): Promise<AccountRecord> {
    const account = ACCOUNT_NAME.test(name) ? await this.deps.store.getAccount(name) : null;
    if (account === null) throw missingAccount(name);
    return account;
  }

  private async requireKey(accountName: string, id: string): Promise<KeyRecord> {
    await this.requireAccount(accountName);
    const key = isValidKeyId(id) ? await this.deps.store.getKey(id) : null;
    // A key of another account is reported exactly like a missing one.
    if (key === null || key.account !== accountName) throw missingKey(accountName, id);
    return key;
  }

  /**
   * Invariant 3: a key actor grants only scopes it holds. `what` names the grant in the
   * message; the message lists the missing scopes and nothing secret.
   */
  private bound(actor: Actor, granted: readonly string[], what: string): void {
    if (actor.kind !== 'key') return;
    const missing = [...new Set(granted)].filter((s) => !actor.scopes.has(s));
    if (missing.length > 0) {
      throw new KeygateError(
        'insufficient_scope',
        `${what} would grant ${missing.join(', ')}, which the acting key does not hold; an admin key can grant only its own scopes`,
      );
    }
  }

  /** Own properties only: a role name from a body or the store is never an Object.prototype key. */
  private roleScopes(role: string): readonly string[] {
    return ownEntry(this.roles, role) ?? [];
  }

  private checkRole(role: string): void {
    if (!Object.hasOwn(this.roles, role)) {
      throw new KeygateError(
        'bad_request',
        `role: unknown role "${role}" (configured: ${Object.keys(this.roles).join(', ')})`,
      );
    }
  }

  private checkExpiry(expiresAt: number): number {
    if (!Number.isSafeInteger(expiresAt) || expiresAt < 0 || expiresAt > MAX_EXPIRES_AT) {
      throw new KeygateError(
        'bad_request',
        `expires_at: expected Unix seconds from now to ${MAX_EXPIRES_AT} (9999-12-31T23:59:59Z), or 0 = never`,
      );
    }
    if (expiresAt !== 0 && expiresAt <= this.now()) {
      throw new KeygateError('bad_request', 'expires_at: must be in the future');
    }
    return expiresAt;
  }

  private checkScopes(
    account: AccountRecord,
    scopes: readonly string[] | undefined,
  ): string[] | null {
    if (scopes === undefined) return null;
    const allowed = this.roleScopes(account.role);
    const unique = [...new Set(scopes)];
    const extra = unique.filter((s) => !allowed.includes(s));
    if (extra.length > 0) {
      throw new KeygateError(
        'bad_request',
        `scopes: ${extra.join(', ')} not granted by role "${account.role}" (${allowed.join(', ') || 'no scopes'})`,
      );
    }
    return unique;
  }

  private keyView(key: KeyRecord): KeyView {
    return {
      id: key.id,
      description: key.description,
      scopes: key.scopes,
      created_at: key.createdAt,
      expires_at: key.expiresAt,
      last_used_at: key.lastUsedAt,
      revoked_at: key.revokedAt,
      replaced_by: key.replacedBy,
      status: keyStatus(key, this.now()),
      request_count: key.requestCount ?? 0,
    };
  }

  private now(): number {
    return unixSeconds(this.deps.clock);
  }
}

function keyStatus(key: KeyRecord, nowSeconds: number): KeyStatus {
  if (key.revokedAt > 0) return 'revoked';
  if (key.expiresAt > 0 && key.expiresAt <= nowSeconds) return 'expired';
  if (key.replacedBy !== '') return 'rotating';
  return 'active';
}

function accountView(a: AccountRecord): AccountView {
  return {
    name: a.name,
    role: a.role,
    description: a.description,
    disabled: a.disabled,
    created_at: a.createdAt,
    updated_at: a.updatedAt,
    rate_limit: rateLimitView(a.rateLimit),
    filters: copyFilters(a.filters),
  };
}

/** A malformed id is echoed only as its length, like a malformed account name. */
export function missingKey(accountName: string, id: string): KeygateError {
  const shown = isValidKeyId(id) ? id : `(a malformed id of ${id.length} characters)`;
  return new KeygateError(
    'not_found',
    `key ${shown} does not exist for service account "${accountName}"`,
  );
}

export function missingAccount(name: string): KeygateError {
  // A malformed name is echoed only as its length: it may be anything a client typed.
  const shown = ACCOUNT_NAME.test(name)
    ? `"${name}"`
    : `(a malformed name of ${name.length} characters)`;
  return new KeygateError('not_found', `service account ${shown} does not exist`);
}

function checkName(name: string): void {
  if (!ACCOUNT_NAME.test(name)) {
    throw new KeygateError(
      'bad_request',
      'name: expected 1-63 lower-case letters, digits or "-", starting with a letter or digit',
    );
  }
}

function checkDescription(value: string, required: boolean): string {
  const description = value.trim();
  if (required && description === '')
    throw new KeygateError('bad_request', 'description: required');
  if (description.length > MAX_DESCRIPTION) {
    throw new KeygateError('bad_request', `description: at most ${MAX_DESCRIPTION} characters`);
  }
  return description;
}
