import { decodeFilters, encodeFilters } from '../../keys/account-filters.js';
import type { AccountRateLimit, AccountRecord, KeyRecord } from '../key-store.js';

// Records are Redis hashes of strings: numbers as decimal strings, booleans as "0"/"1",
// a key's scopes as JSON ("" = the role's scopes). A hash missing its identifying fields
// decodes to null (deleted, expired or never written).

export function encodeAccount(a: AccountRecord): string[] {
  // biome-ignore format: field/value pairs read best one pair per line
  return [
    'name', a.name,
    'role', a.role,
    'description', a.description,
    'disabled', a.disabled ? '1' : '0',
    'created_at', String(a.createdAt),
    'updated_at', String(a.updatedAt),
    ...(a.managed === true ? ['managed', '1'] : []),
    ...(a.rateLimit !== undefined ? ['rate_limit', encodeRateLimit(a.rateLimit)] : []),
    // Always written ("" = none): apply's HSET of a whole record must clear removed filters.
    'filters', encodeFilters(a.filters),
  ];
}

/** "<requests>/<perSeconds>"; "" = none (an update clears the override by writing ""). */
export function encodeRateLimit(limit: AccountRateLimit | null): string {
  return limit === null ? '' : `${limit.requests}/${limit.perSeconds}`;
}

function decodeRateLimit(text: string | undefined): AccountRateLimit | undefined {
  const match = /^(\d{1,10})\/(\d{1,10})$/.exec(text ?? '');
  if (match === null) return undefined;
  return { requests: Number(match[1]), perSeconds: Number(match[2]) };
}

export function decodeAccount(h: Record<string, string>): AccountRecord | null {
  if (h.name === undefined || h.role === undefined) return null;
  const filters = decodeFilters(h.filters);
  return {
    name: h.name,
    role: h.role,
    description: h.description ?? '',
    disabled: h.disabled === '1',
    createdAt: Number(h.created_at ?? 0),
    updatedAt: Number(h.updated_at ?? 0),
    // Only when set: records written before `keygate apply` existed decode exactly as before.
    ...(h.managed === '1' ? { managed: true } : {}),
    ...optionalRateLimit(decodeRateLimit(h.rate_limit)),
    // Records written before filters existed have no field: not filtered, as before.
    ...(filters === undefined ? {} : { filters }),
  };
}

function optionalRateLimit(limit: AccountRateLimit | undefined): { rateLimit?: AccountRateLimit } {
  return limit === undefined ? {} : { rateLimit: limit };
}

export function encodeKey(k: KeyRecord): string[] {
  // biome-ignore format: field/value pairs read best one pair per line
  return [
    'id', k.id,
    'account', k.account,
    'hash', k.hash,
    'description', k.description,
    'scopes', k.scopes === null ? '' : JSON.stringify(k.scopes),
    'created_at', String(k.createdAt),
    'expires_at', String(k.expiresAt),
    'revoked_at', String(k.revokedAt),
    'last_used_at', String(k.lastUsedAt),
    'replaced_by', k.replacedBy,
    'generation', String(k.generation),
  ];
}

export function decodeKey(h: Record<string, string>): KeyRecord | null {
  if (h.id === undefined || h.account === undefined || h.hash === undefined) return null;
  return {
    id: h.id,
    account: h.account,
    hash: h.hash,
    description: h.description ?? '',
    scopes: h.scopes ? (JSON.parse(h.scopes) as string[]) : null,
    createdAt: Number(h.created_at ?? 0),
    expiresAt: Number(h.expires_at ?? 0),
    revokedAt: Number(h.revoked_at ?? 0),
    lastUsedAt: Number(h.last_used_at ?? 0),
    replacedBy: h.replaced_by ?? '',
    generation: Number(h.generation ?? 0),
    // Written only by addKeyUses (HINCRBY), never by encodeKey: no other write can reset it.
    ...(h.request_count === undefined ? {} : { requestCount: Number(h.request_count) }),
  };
}
