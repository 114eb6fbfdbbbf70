import { parseDocument, YAMLError } from 'yaml';
import { KeygateError } from '../errors.js';
import { ownEntry } from '../shared/null-proto-record.js';
import { type AccountFilters, checkFilters } from './account-filters.js';
import { containsKey, isValidKeyId } from './key-format.js';

/**
 * The accounts file of `keygate apply` (DESIGN §14): parsed and validated whole before anything
 * is read from or written to the store. Every refusal is one KeygateError('bad_request') whose
 * message starts with the path of the offending value (`accounts[2].keys[0].hash: ...`) and
 * never repeats a hash field's value: a key pasted there by mistake must not reach a CI log.
 */

export interface DesiredKey {
  id: string;
  hash: string;
  description: string;
  /** Unix seconds, 0 = never. */
  expiresAt: number;
  /** null = all of the role's scopes. */
  scopes: string[] | null;
}

export interface DesiredAccount {
  name: string;
  role: string;
  description: string;
  disabled: boolean;
  /** `{}` = not filtered (the file is the truth: filters left out are removed). */
  filters: AccountFilters;
  keys: DesiredKey[];
}

export interface AccountsFileContext {
  roles: Readonly<Record<string, readonly string[]>>;
  /** The deployment's key prefix, to recognise a key pasted where its hash belongs. */
  prefix: string;
}

export const ACCOUNT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const MAX_DESCRIPTION = 200;
/** Bounded so a hostile file cannot make apply (or the store) hold millions of records. */
export const MAX_ACCOUNTS = 10_000;
export const MAX_KEYS_PER_ACCOUNT = 1_000;
export const MAX_FILE_BYTES = 4 * 1024 * 1024;
/**
 * The latest expiry a key may carry: 9999-12-31T23:59:59Z, the last second RFC 3339 (and so
 * the API, the CLI and every log line) can write. Anything later is a unit mistake
 * (milliseconds for seconds) and would not render; a key meant never to expire uses 0.
 * A fixed bound rather than "now + N years" keeps validation independent of the clock.
 */
export const MAX_EXPIRES_AT = 253_402_300_799;

/**
 * argon2id cost bounds for an imported hash. Every verification of the key runs at the
 * hash's own parameters, inside keygate's bounded verify pool: a hash at m=4 GiB would make
 * each attempt with that key id (right or wrong) allocate 4 GiB, and t=1000 would hold a
 * worker for minutes. 256 MiB is 4x RFC 9106's second recommendation (64 MiB) and 13x
 * OWASP's 19 MiB default; t up to 10 and p up to 16 (the config's own limit) cover every
 * published recommendation. The floor m >= 1024 KiB is the config's own minimum.
 */
export const HASH_BOUNDS = {
  minMemoryKiB: 1024,
  maxMemoryKiB: 262_144,
  maxTime: 10,
  maxParallelism: 16,
} as const;

const PHC =
  /^\$argon2id\$v=19\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,10})\$([A-Za-z0-9+/]{11,86})\$([A-Za-z0-9+/]{22,86})$/;

const ACCOUNT_FIELDS = ['name', 'role', 'description', 'disabled', 'filters', 'keys'] as const;
const KEY_FIELDS = ['id', 'hash', 'description', 'expires_at', 'scopes'] as const;

function refuse(path: string, message: string): KeygateError {
  return new KeygateError('bad_request', `${path}: ${message}`);
}

/** A field name from the file, echoed only when it is short and plain. */
function shownField(name: string): string {
  return /^[A-Za-z0-9_$-]{1,40}$/.test(name) ? name : `(a field name of ${name.length} characters)`;
}

type Mapping = Readonly<Record<string, unknown>>;

function mapping(value: unknown, path: string, fields: readonly string[]): Mapping {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw refuse(path, 'expected a mapping');
  for (const field of Object.keys(value)) {
    if (!fields.includes(field))
      throw refuse(`${path}.${shownField(field)}`, `unknown field (allowed: ${fields.join(', ')})`);
  }
  return value as Mapping;
}

function field(value: Mapping, name: string): unknown {
  return ownEntry(value, name);
}

function text(value: unknown, path: string, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string') throw refuse(path, 'expected a string');
  return value;
}

function description(value: unknown, path: string): string {
  const trimmed = text(value, path, '').trim();
  if (trimmed.length > MAX_DESCRIPTION) throw refuse(path, `at most ${MAX_DESCRIPTION} characters`);
  return trimmed;
}

/** Parses YAML (JSON is YAML) and validates it; see validateAccounts. */
export function parseAccountsFile(source: string, context: AccountsFileContext): DesiredAccount[] {
  return validateAccounts(parseAccountsYaml(source), context);
}

/** The file's YAML as plain data, or a path-naming bad_request; validation is validateAccounts. */
export function parseAccountsYaml(source: string): unknown {
  if (Buffer.byteLength(source) > MAX_FILE_BYTES)
    throw refuse('(file)', `larger than ${MAX_FILE_BYTES} bytes`);
  let raw: unknown;
  try {
    // Silent: YAML would print its warnings (with text from the file) to stderr itself.
    const doc = parseDocument(source, { uniqueKeys: true, logLevel: 'silent' });
    // A warning is refused too: an unknown tag (`!secret`) is a mistake, never a value.
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem !== undefined) throw problem;
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // Position and code only: YAML's own message quotes the offending line, which may be a key.
    if (err instanceof YAMLError) {
      const at = err.linePos?.[0];
      const where = at === undefined ? '(file)' : `line ${at.line}, column ${at.col}`;
      throw refuse(where, `not valid YAML (${err.code})`);
    }
    throw refuse('(file)', 'not valid YAML');
  }
  onlyJsonValues(raw);
  return raw;
}

/**
 * Refuses any value JSON cannot carry as it is, naming its path. The remote CLI sends the
 * parsed file to POST /apply as JSON, where `.inf` and `.nan` would become null, which this
 * format reads as "absent": `expires_at: .inf` (refused locally) would be a key that never
 * expires remotely, `scopes: .nan` every scope of the role. A file must mean the same in both
 * modes, so YAML-only values (non-finite numbers; with `%YAML 1.1` timestamps, sets, binary)
 * are refused here, before either. Iterative: a deeply nested file is no stack overflow.
 */
function onlyJsonValues(raw: unknown): void {
  const pending: Array<{ value: unknown; path: string }> = [{ value: raw, path: '(file)' }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value, path } = next;
    if (value === null || typeof value === 'string' || typeof value === 'boolean') continue;
    if (typeof value === 'number') {
      if (Number.isFinite(value)) continue;
      throw refuse(path, 'not a finite number (.inf and .nan are not values here)');
    }
    if (Array.isArray(value)) {
      value.forEach((item, i) => {
        pending.push({ value: item, path: `${path}[${i}]` });
      });
      continue;
    }
    const proto = typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
    if (proto !== Object.prototype && proto !== null)
      throw refuse(path, 'expected a string, number, true/false, list or mapping');
    for (const key of Object.keys(value as object)) {
      pending.push({
        value: ownEntry(value as Mapping, key),
        path: path === '(file)' ? shownField(key) : `${path}.${shownField(key)}`,
      });
    }
  }
}

/**
 * Validates parsed input of any shape. Throws only KeygateError('bad_request') naming a path:
 * unknown fields, malformed names and ids, duplicate names or ids, unknown roles, scopes the
 * role lacks, hashes that are not argon2id within HASH_BOUNDS, expiries out of range.
 */
export function validateAccounts(raw: unknown, context: AccountsFileContext): DesiredAccount[] {
  const top = mapping(raw, '(file)', ['accounts']);
  const list = field(top, 'accounts');
  if (!Array.isArray(list)) throw refuse('accounts', 'expected a list');
  if (list.length > MAX_ACCOUNTS) throw refuse('accounts', `at most ${MAX_ACCOUNTS} accounts`);
  const names = new Set<string>();
  const ids = new Set<string>();
  return list.map((item: unknown, index) => {
    const path = `accounts[${index}]`;
    const entry = mapping(item, path, ACCOUNT_FIELDS);
    const name = text(field(entry, 'name'), `${path}.name`);
    if (!ACCOUNT_NAME.test(name))
      throw refuse(
        `${path}.name`,
        'expected 1-63 lower-case letters, digits or "-", starting with a letter or digit',
      );
    if (names.has(name)) throw refuse(`${path}.name`, `"${name}" is listed twice`);
    names.add(name);
    const role = text(field(entry, 'role'), `${path}.role`);
    const roleScopes = Object.hasOwn(context.roles, role)
      ? ownEntry(context.roles, role)
      : undefined;
    if (roleScopes === undefined)
      throw refuse(
        `${path}.role`,
        `unknown role${/^[A-Za-z0-9_-]{1,64}$/.test(role) ? ` "${role}"` : ''} (configured: ${Object.keys(context.roles).join(', ')})`,
      );
    const disabled = field(entry, 'disabled') ?? false;
    if (typeof disabled !== 'boolean') throw refuse(`${path}.disabled`, 'expected true or false');
    // The admin API's own check, so a file is refused exactly where the API would refuse it.
    const filters = checkFilters(field(entry, 'filters') ?? {}, `${path}.filters`);
    const keyList = field(entry, 'keys') ?? [];
    if (!Array.isArray(keyList)) throw refuse(`${path}.keys`, 'expected a list');
    if (keyList.length > MAX_KEYS_PER_ACCOUNT)
      throw refuse(`${path}.keys`, `at most ${MAX_KEYS_PER_ACCOUNT} keys per account`);
    const keys = keyList.map((keyItem: unknown, keyIndex) =>
      validateKey(keyItem, `${path}.keys[${keyIndex}]`, role, roleScopes, ids, context.prefix),
    );
    return {
      name,
      role,
      description: description(field(entry, 'description'), `${path}.description`),
      disabled,
      filters,
      keys,
    };
  });
}

function validateKey(
  item: unknown,
  path: string,
  role: string,
  roleScopes: readonly string[],
  ids: Set<string>,
  prefix: string,
): DesiredKey {
  const entry = mapping(item, path, KEY_FIELDS);
  const id = text(field(entry, 'id'), `${path}.id`);
  if (!isValidKeyId(id)) throw refuse(`${path}.id`, 'expected the 12-character base62 key id');
  if (ids.has(id)) throw refuse(`${path}.id`, `key id ${id} is listed twice`);
  ids.add(id);
  const hash = checkHash(field(entry, 'hash'), `${path}.hash`, prefix);
  const expiresAt = field(entry, 'expires_at') ?? 0;
  if (
    typeof expiresAt !== 'number' ||
    !Number.isSafeInteger(expiresAt) ||
    expiresAt < 0 ||
    expiresAt > MAX_EXPIRES_AT
  )
    throw refuse(
      `${path}.expires_at`,
      `expected Unix seconds up to ${MAX_EXPIRES_AT} (9999-12-31T23:59:59Z), or 0 = never`,
    );
  const rawScopes = field(entry, 'scopes');
  let scopes: string[] | null = null;
  if (rawScopes !== undefined && rawScopes !== null) {
    if (!Array.isArray(rawScopes) || !rawScopes.every((s) => typeof s === 'string'))
      throw refuse(`${path}.scopes`, 'expected a list of scope names');
    scopes = [...new Set(rawScopes as string[])];
    const extra = scopes.filter((s) => !roleScopes.includes(s));
    if (extra.length > 0)
      throw refuse(
        `${path}.scopes`,
        `${extra.length === 1 ? 'a scope' : `${extra.length} scopes`} not granted by role "${role}" (${roleScopes.join(', ') || 'no scopes'})`,
      );
  }
  return {
    id,
    hash,
    description: description(field(entry, 'description'), `${path}.description`),
    expiresAt,
    scopes,
  };
}

/** An argon2id PHC string within HASH_BOUNDS. The value itself is never part of a message. */
function checkHash(value: unknown, path: string, prefix: string): string {
  if (typeof value !== 'string') throw refuse(path, 'expected an argon2id hash string');
  if (containsKey(value, prefix) || value.startsWith(`${prefix}_`))
    throw refuse(
      path,
      'this is an API key, not its hash: never commit a key; revoke it and mint a new one with `keygate keys mint ACCOUNT --offline`',
    );
  const match = PHC.exec(value);
  if (match === null)
    throw refuse(
      path,
      'expected an argon2id PHC string "$argon2id$v=19$m=…,t=…,p=…$salt$hash" (from `keygate keys mint --offline`)',
    );
  const [memory, time, parallelism] = [match[1], match[2], match[3]].map(Number) as [
    number,
    number,
    number,
  ];
  const b = HASH_BOUNDS;
  if (memory < b.minMemoryKiB || memory > b.maxMemoryKiB || memory < 8 * parallelism)
    throw refuse(path, `m (memory, KiB) must be from ${b.minMemoryKiB} to ${b.maxMemoryKiB}`);
  if (time < 1 || time > b.maxTime) throw refuse(path, `t (passes) must be from 1 to ${b.maxTime}`);
  if (parallelism < 1 || parallelism > b.maxParallelism)
    throw refuse(path, `p (lanes) must be from 1 to ${b.maxParallelism}`);
  return value;
}
