import { KeygateError } from '../errors.js';
import type { Principal } from '../keys/principal.js';
import type { RateDecision, RateLimit, RateLimiter } from './rate-limiter.js';

/** `rateLimitStoreDown`: what a request gets when the limiter cannot decide (Redis down). */
export type RateLimitStoreDown = 'refuse' | 'allow';

/** keygate_rate_limit_decisions_total{result}. */
export type RateLimitResult = 'allowed' | 'limited' | 'store_down_refused' | 'store_down_allowed';

export interface RateLimitSettings {
  /** Role → its default quota (config `rateLimits`); a role not here has none. */
  readonly defaults: ReadonlyMap<string, RateLimit>;
  readonly storeDown: RateLimitStoreDown;
}

/** Config `rateLimits` (per-second windows after the schema) as the gate's map. */
export function rateLimitSettings(
  rateLimits: Readonly<Record<string, { requests: number; perMs: number }>>,
  storeDown: RateLimitStoreDown,
): RateLimitSettings {
  return {
    defaults: new Map(
      Object.entries(rateLimits).map(([role, l]) => [
        role,
        { requests: l.requests, perSeconds: l.perMs / 1000 },
      ]),
    ),
    storeDown,
  };
}

/**
 * The quota check of a forwarded request (DESIGN §16), after the scope check and before the
 * in-flight slot: a refused request holds nothing. The quota is the account's own override, else
 * its role's default, else none (and then no store call is made at all). Admin API calls and
 * authz questions are not counted: a gateway's operators must be able to raise a limit that is
 * being hit, and an authz data plane caches allows and cannot pass a 429 on (DESIGN §13).
 */
export class RateLimitGate {
  constructor(
    private readonly limiter: RateLimiter,
    private settings: RateLimitSettings,
    private readonly counted: (result: RateLimitResult, account: string) => void,
  ) {}

  /** A config reload's quotas and store-down mode: apply from the next request on. */
  setSettings(settings: RateLimitSettings): void {
    this.settings = settings;
  }

  /** The quota that applies to the principal, if any. */
  limitFor(principal: Principal): RateLimit | undefined {
    return principal.rateLimit ?? this.settings.defaults.get(principal.role);
  }

  /**
   * Counts the request. Resolves with the decision for the response headers, or undefined when
   * the store was down and `allow` let the request through uncounted. Throws rate_limited (429)
   * or, store down with `refuse`, store_unavailable (503).
   */
  async take(principal: Principal, limit: RateLimit): Promise<RateDecision | undefined> {
    const storeDown = this.settings.storeDown;
    let decision: RateDecision;
    try {
      decision = await this.limiter.take(principal.account, limit);
    } catch (err) {
      const error =
        err instanceof KeygateError
          ? err
          : new KeygateError('store_unavailable', 'rate limit store unavailable', { cause: err });
      if (error.code !== 'store_unavailable') throw error;
      if (storeDown === 'allow') {
        this.counted('store_down_allowed', principal.account);
        return undefined;
      }
      this.counted('store_down_refused', principal.account);
      throw error;
    }
    if (!decision.allowed) {
      this.counted('limited', principal.account);
      throw new KeygateError(
        'rate_limited',
        `this account may make ${limit.requests} requests per ${limit.perSeconds}s; retry in ${decision.resetSeconds}s`,
        { headers: rateLimitHeaders(decision) },
      );
    }
    this.counted('allowed', principal.account);
    return decision;
  }
}

/**
 * The IETF fields, in the structured-field form of draft-ietf-httpapi-ratelimit-headers-09/-10
 * (§3 RateLimit-Policy: q quota, w window in seconds; §4 RateLimit: r remaining, t seconds
 * until the quota resets), one policy named "default"; plus Retry-After (RFC 9110 §10.2.3) in
 * whole seconds, rounded up, so a client that waits that long is inside the next window.
 * Flat `[name, value, ...]`, as the forwarder's response head and sendError's table take them.
 */
export function rateLimitHeaders(decision: RateDecision): string[] {
  const headers = [
    'ratelimit-policy',
    `"default";q=${decision.limit.requests};w=${decision.limit.perSeconds}`,
    'ratelimit',
    `"default";r=${decision.remaining};t=${decision.resetSeconds}`,
  ];
  if (!decision.allowed) headers.push('retry-after', String(decision.resetSeconds));
  return headers;
}

/**
 * An allowed request's response head: keygate's RateLimit fields appended to the upstream's
 * (flat list from responseHeaders). An upstream that sends RateLimit or RateLimit-Policy itself
 * keeps them untouched and keygate adds none: two policies both named "default" would
 * contradict each other, and keygate never rewrites what the upstream answered.
 */
export function withRateLimitHeaders(head: string[], decision: RateDecision | undefined): string[] {
  if (decision === undefined) return head;
  for (let i = 0; i < head.length; i += 2) {
    const name = (head[i] as string).toLowerCase();
    if (name === 'ratelimit' || name === 'ratelimit-policy') return head;
  }
  head.push(...rateLimitHeaders(decision));
  return head;
}
