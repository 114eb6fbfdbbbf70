import { KeygateError } from '../errors.js';
import type { Clock } from '../shared/clock.js';
import type { AccountRecord, KeyRecord, KeyStore } from '../store/key-store.js';
import type { Hasher } from './hasher.js';
import { generateKey } from './key-format.js';
import type { VerifyPool } from './verify-pool.js';

export const ACCOUNT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const MAX_DESCRIPTION = 200;

export interface CreateAccountInput {
  name: string;
  role: string;
  description?: string | undefined;
}

export interface CreateKeyInput {
  description: string;
  /** Unix seconds; 0 or absent = never. */
  expiresAt?: number | undefined;
  scopes?: readonly string[] | undefined;
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
 * Accounts and keys: validation and the writes behind them, shared by the CLI and (next) the
 * admin API so both produce the same store state.
 */
export class KeyService {
  constructor(private readonly options: KeyDeps) {}

  async createAccount(input: CreateAccountInput): Promise<AccountRecord> {
    if (!ACCOUNT_NAME.test(input.name)) {
      throw new KeygateError(
        'bad_request',
        'name: expected 1-63 lower-case letters, digits or "-", starting with a letter or digit',
      );
    }
    if (!Object.hasOwn(this.options.roles, input.role)) {
      throw new KeygateError(
        'bad_request',
        `role: unknown role "${input.role}" (configured: ${Object.keys(this.options.roles).join(', ')})`,
      );
    }
    const description = checkDescription(input.description ?? '', false);
    const now = this.nowSeconds();
    const account: AccountRecord = {
      name: input.name,
      role: input.role,
      description,
      disabled: false,
      createdAt: now,
      updatedAt: now,
    };
    await this.options.store.createAccount(account);
    return account;
  }

  async createKey(accountName: string, input: CreateKeyInput): Promise<IssuedKey> {
    const { store, hasher, pool, prefix, roles } = this.options;
    const description = checkDescription(input.description, true);
    const now = this.nowSeconds();
    const expiresAt = input.expiresAt ?? 0;
    if (!Number.isInteger(expiresAt) || expiresAt < 0) {
      throw new KeygateError('bad_request', 'expires_at: expected Unix seconds (0 = never)');
    }
    if (expiresAt !== 0 && expiresAt <= now) {
      throw new KeygateError('bad_request', 'expires_at: must be in the future');
    }
    const account = await store.getAccount(accountName);
    if (account === null) {
      throw new KeygateError('not_found', `service account "${accountName}" does not exist`);
    }
    const scopes = input.scopes === undefined ? null : [...new Set(input.scopes)];
    if (scopes !== null) {
      const allowed = roles[account.role] ?? [];
      const extra = scopes.filter((s) => !allowed.includes(s));
      if (extra.length > 0) {
        throw new KeygateError(
          'bad_request',
          `scopes: ${extra.join(', ')} not granted by role "${account.role}" (${allowed.join(', ')})`,
        );
      }
    }
    const generated = generateKey(prefix);
    const hash = await pool.run(() => hasher.hash(generated.full));
    const record: KeyRecord = {
      id: generated.id,
      account: account.name,
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
    await store.createKey(record);
    return {
      id: record.id,
      key: generated.full,
      account: account.name,
      description,
      scopes,
      created_at: now,
      expires_at: expiresAt,
    };
  }

  private nowSeconds(): number {
    return Math.floor(this.options.clock.now() / 1000);
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
