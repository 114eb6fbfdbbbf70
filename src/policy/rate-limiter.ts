import type { Clock } from '../shared/clock.js';

/** A quota: at most `requests` per window of `perSeconds` (DESIGN §16). */
export interface RateLimit {
  readonly requests: number;
  readonly perSeconds: number;
}

/** What one request's call on the limiter came to. */
export interface RateDecision {
  readonly allowed: boolean;
  readonly limit: RateLimit;
  /** Requests still allowed in the current window after this one (0 when refused). */
  readonly remaining: number;
  /** Whole seconds until the window ends (at least 1): Retry-After and the `t` parameter. */
  readonly resetSeconds: number;
}

/**
 * Counts requests per account against a quota. Algorithm: a fixed window per account that
 * opens with the account's first request and lasts `perSeconds`; at most `requests` are
 * allowed in it, refused requests are not counted. Chosen over a sliding-window counter or
 * GCRA because it is exact ("the (N+1)th request in the window is refused", issue 14), costs one
 * counter per account, and its reset time is a plain number for `RateLimit`'s `t`; the known
 * cost is that a client may spend N at the end of one window and N at the start of the next.
 *
 * Implementations throw KeygateError `store_unavailable` when they cannot decide (Redis down);
 * the caller applies `rateLimitStoreDown`.
 */
export interface RateLimiter {
  take(account: string, limit: RateLimit): Promise<RateDecision>;
}

/** Whole seconds left of a window of `ms` milliseconds, at least 1 (a header of 0 invites a spin). */
export function ceilSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** The counter of one account under one window length. */
interface Window {
  count: number;
  /** Clock milliseconds at which the window closes. */
  endsAt: number;
}

/** Expired windows are swept once the map has grown by this many entries since the last sweep. */
const SWEEP_EVERY = 1024;

/**
 * The file store's limiter: one process holds a file store (its lease), so the process's own
 * counts are the deployment's. Time comes from the injected Clock (tests move it), no timers.
 * A `Map` keyed by account and window length: never a plain object, whatever the name.
 */
export class InProcessRateLimiter implements RateLimiter {
  private readonly windows = new Map<string, Window>();
  private sweepAt = SWEEP_EVERY;

  constructor(private readonly clock: Clock) {}

  take(account: string, limit: RateLimit): Promise<RateDecision> {
    return Promise.resolve(this.takeNow(account, limit));
  }

  /** The same decision, synchronously (what take() resolves with). */
  takeNow(account: string, limit: RateLimit): RateDecision {
    const now = this.clock.now();
    // The window length is part of the key, as in Redis: a changed quota starts a fresh window
    // rather than inheriting one of another length.
    const key = `${limit.perSeconds}\n${account}`;
    let window = this.windows.get(key);
    if (window === undefined || window.endsAt <= now) {
      window = { count: 0, endsAt: now + limit.perSeconds * 1000 };
      this.windows.set(key, window);
      if (this.windows.size >= this.sweepAt) this.sweep(now);
    }
    const resetSeconds = ceilSeconds(window.endsAt - now);
    if (window.count >= limit.requests) {
      return { allowed: false, limit, remaining: 0, resetSeconds };
    }
    window.count++;
    return { allowed: true, limit, remaining: limit.requests - window.count, resetSeconds };
  }

  /** Windows tracked now (tests: expired ones do not pile up). */
  get size(): number {
    return this.windows.size;
  }

  private sweep(now: number): void {
    for (const [key, window] of this.windows) if (window.endsAt <= now) this.windows.delete(key);
    this.sweepAt = this.windows.size + SWEEP_EVERY;
  }
}
