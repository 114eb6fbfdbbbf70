import { parseDurationMs } from '../config/duration.js';
import { KeygateError } from '../errors.js';
import type { AccountRateLimit } from '../store/key-store.js';

/** Bounds of an account's quota: the same as config `rateLimits` (schema.ts). */
export const MAX_RATE_LIMIT_REQUESTS = 1_000_000_000;
export const MAX_RATE_LIMIT_SECONDS = 30 * 86_400;

/** The quota as the admin API shows it (snake_case like the rest of the account body). */
export interface RateLimitView {
  requests: number;
  per_seconds: number;
}

/** Checks an account's quota (admin API, CLI): whole numbers within bounds, else bad_request. */
export function checkRateLimit(limit: AccountRateLimit): AccountRateLimit {
  const { requests, perSeconds } = limit;
  if (!Number.isSafeInteger(requests) || requests < 1 || requests > MAX_RATE_LIMIT_REQUESTS)
    throw new KeygateError(
      'bad_request',
      `rate_limit.requests: expected a whole number from 1 to ${MAX_RATE_LIMIT_REQUESTS}`,
    );
  if (!Number.isSafeInteger(perSeconds) || perSeconds < 1 || perSeconds > MAX_RATE_LIMIT_SECONDS)
    throw new KeygateError(
      'bad_request',
      `rate_limit.per_seconds: expected a whole number of seconds from 1 to ${MAX_RATE_LIMIT_SECONDS} (30 days)`,
    );
  return { requests, perSeconds };
}

export function rateLimitView(limit: AccountRateLimit | undefined): RateLimitView | null {
  return limit === undefined ? null : { requests: limit.requests, per_seconds: limit.perSeconds };
}

export function sameRateLimit(
  a: AccountRateLimit | undefined,
  b: AccountRateLimit | undefined,
): boolean {
  return a?.requests === b?.requests && a?.perSeconds === b?.perSeconds;
}

/**
 * The CLI's `--rate-limit 100/1m` (N/duration, the duration as in the config: 30s, 1m, 1h, or
 * seconds) or `none` (null: clear the override). Undefined for anything else.
 */
export function parseRateLimitFlag(text: string): AccountRateLimit | null | undefined {
  if (text === 'none') return null;
  const match = /^(\d{1,10})\/([0-9.]+(?:ms|s|m|h|d)?)$/.exec(text);
  if (match === null) return undefined;
  const ms = parseDurationMs(match[2]);
  if (ms === undefined || ms % 1000 !== 0) return undefined;
  return { requests: Number(match[1]), perSeconds: ms / 1000 };
}

/** "100/60s" for tables and `accounts show`; "-" when the role default applies. */
export function formatRateLimit(limit: RateLimitView | null | undefined): string {
  return limit == null ? '-' : `${limit.requests}/${limit.per_seconds}s`;
}
