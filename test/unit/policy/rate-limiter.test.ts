import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { errorHeaders, KeygateError } from '../../../src/errors.js';
import { formatRateLimit, parseRateLimitFlag } from '../../../src/keys/account-rate-limit.js';
import type { Principal } from '../../../src/keys/principal.js';
import {
  RateLimitGate,
  type RateLimitResult,
  rateLimitHeaders,
  rateLimitSettings,
  withRateLimitHeaders,
} from '../../../src/policy/rate-limit-gate.js';
import { InProcessRateLimiter, type RateLimiter } from '../../../src/policy/rate-limiter.js';
import { applyAccountChange } from '../../../src/store/record-rules.js';
import { decodeAccount, encodeAccount } from '../../../src/store/redis/record-codec.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const principal = (over: Partial<Principal> = {}): Principal => ({
  keyId: 'AbCdEfGhIjKl',
  account: 'team-a',
  role: 'reader',
  scopes: new Set(['read']),
  expiresAt: 0,
  rateLimit: undefined,
  filters: undefined,
  ...over,
});

describe('InProcessRateLimiter (fixed window, fake clock)', () => {
  it('allows N in the window, refuses the (N+1)th, and resets when the window ends', () => {
    const clock = new FakeClock();
    const limiter = new InProcessRateLimiter(clock);
    const limit = { requests: 3, perSeconds: 60 };
    const remaining = [0, 1, 2].map(() => limiter.takeNow('a', limit));
    expect(remaining.map((d) => [d.allowed, d.remaining, d.resetSeconds])).toEqual([
      [true, 2, 60],
      [true, 1, 60],
      [true, 0, 60],
    ]);
    clock.advance(22_500);
    expect(limiter.takeNow('a', limit)).toMatchObject({
      allowed: false,
      remaining: 0,
      resetSeconds: 38,
    });
    // Another account has its own window.
    expect(limiter.takeNow('b', limit).allowed).toBe(true);
    clock.advance(37_499);
    expect(limiter.takeNow('a', limit)).toMatchObject({ allowed: false, resetSeconds: 1 });
    clock.advance(1);
    expect(limiter.takeNow('a', limit)).toMatchObject({
      allowed: true,
      remaining: 2,
      resetSeconds: 60,
    });
  });

  it('hostile account names are just names (Map, not an object)', () => {
    const limiter = new InProcessRateLimiter(new FakeClock());
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', ''])
      expect(limiter.takeNow(name, { requests: 1, perSeconds: 1 }).allowed).toBe(true);
    expect(limiter.takeNow('__proto__', { requests: 1, perSeconds: 1 }).allowed).toBe(false);
  });

  it('expired windows are swept, so idle accounts do not pile up', () => {
    const clock = new FakeClock();
    const limiter = new InProcessRateLimiter(clock);
    for (let i = 0; i < 5000; i++) {
      limiter.takeNow(`a${i}`, { requests: 1, perSeconds: 1 });
      clock.advance(10);
    }
    expect(limiter.size).toBeLessThan(1200);
  });

  it('property: never more than N allowed in any window, for any interleaving of accounts and time', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(
          fc.tuple(fc.constantFrom('a', 'b', '__proto__'), fc.integer({ min: 0, max: 1500 })),
          {
            maxLength: 200,
          },
        ),
        (requests, perSeconds, steps) => {
          const clock = new FakeClock();
          const limiter = new InProcessRateLimiter(clock);
          const limit = { requests, perSeconds };
          // Per account: the start of its current window (as an independent model) and the
          // number allowed in it.
          const model = new Map<string, { start: number; allowed: number }>();
          for (const [account, advance] of steps) {
            clock.advance(advance);
            const now = clock.now();
            let w = model.get(account);
            if (w === undefined || now >= w.start + perSeconds * 1000) {
              w = { start: now, allowed: 0 };
              model.set(account, w);
            }
            const before = w.allowed;
            const d = limiter.takeNow(account, limit);
            // Exactly the model: allowed while the window has room, refused once it is full.
            expect(d.allowed).toBe(before < requests);
            if (d.allowed) w.allowed++;
            expect(w.allowed).toBeLessThanOrEqual(requests);
            expect(d.resetSeconds).toBeGreaterThanOrEqual(1);
            expect(d.resetSeconds).toBeLessThanOrEqual(perSeconds);
          }
        },
      ),
    );
  });
});

describe('RateLimit headers (draft-ietf-httpapi-ratelimit-headers-09/-10 structured fields)', () => {
  it('a refusal: RateLimit-Policy, RateLimit with r=0, Retry-After in whole seconds', () => {
    const decision = {
      allowed: false,
      limit: { requests: 100, perSeconds: 60 },
      remaining: 0,
      resetSeconds: 37,
    };
    expect(rateLimitHeaders(decision)).toEqual([
      'ratelimit-policy',
      '"default";q=100;w=60',
      'ratelimit',
      '"default";r=0;t=37',
      'retry-after',
      '37',
    ]);
  });

  it('an allowed response carries RateLimit but never replaces the upstream own fields', () => {
    const decision = {
      allowed: true,
      limit: { requests: 10, perSeconds: 1 },
      remaining: 4,
      resetSeconds: 1,
    };
    expect(withRateLimitHeaders(['content-type', 'a/b'], decision)).toEqual([
      'content-type',
      'a/b',
      'ratelimit-policy',
      '"default";q=10;w=1',
      'ratelimit',
      '"default";r=4;t=1',
    ]);
    const upstream = ['RateLimit', '"up";r=1;t=2', 'x', 'y'];
    expect(withRateLimitHeaders([...upstream], decision)).toEqual(upstream);
    expect(withRateLimitHeaders(['ratelimit-POLICY', '"up";q=1'], decision)).toEqual([
      'ratelimit-POLICY',
      '"up";q=1',
    ]);
    expect(withRateLimitHeaders(['a', 'b'], undefined)).toEqual(['a', 'b']);
  });
});

describe('RateLimitGate', () => {
  const failing: RateLimiter = {
    take: () => Promise.reject(new KeygateError('store_unavailable', 'down')),
  };

  it('the account override wins over the role default; no limit → no quota', () => {
    const counted: RateLimitResult[] = [];
    const gate = new RateLimitGate(
      new InProcessRateLimiter(new FakeClock()),
      rateLimitSettings({ reader: { requests: 5, perMs: 60_000 } }, 'refuse'),
      (r) => counted.push(r),
    );
    expect(gate.limitFor(principal())).toEqual({ requests: 5, perSeconds: 60 });
    expect(gate.limitFor(principal({ rateLimit: { requests: 1, perSeconds: 2 } }))).toEqual({
      requests: 1,
      perSeconds: 2,
    });
    expect(gate.limitFor(principal({ role: 'admin' }))).toBeUndefined();
    expect(gate.limitFor(principal({ role: 'constructor' }))).toBeUndefined();
  });

  it('over the limit: 429 rate_limited with Retry-After and the RateLimit fields in the error', async () => {
    const counted: RateLimitResult[] = [];
    const gate = new RateLimitGate(
      new InProcessRateLimiter(new FakeClock()),
      rateLimitSettings({}, 'refuse'),
      (r) => counted.push(r),
    );
    const p = principal({ rateLimit: { requests: 1, perSeconds: 60 } });
    await gate.take(p, { requests: 1, perSeconds: 60 });
    const err = await gate.take(p, { requests: 1, perSeconds: 60 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeygateError);
    expect((err as KeygateError).status).toBe(429);
    expect(errorHeaders(err as KeygateError)).toEqual({
      'retry-after': '60',
      'ratelimit-policy': '"default";q=1;w=60',
      ratelimit: '"default";r=0;t=60',
    });
    expect(counted).toEqual(['allowed', 'limited']);
  });

  it('store down: refuse → 503 store_unavailable; allow → through, uncounted; both counted', async () => {
    const counted: RateLimitResult[] = [];
    const gate = new RateLimitGate(failing, rateLimitSettings({}, 'refuse'), (r) =>
      counted.push(r),
    );
    const limit = { requests: 1, perSeconds: 1 };
    await expect(gate.take(principal(), limit)).rejects.toMatchObject({
      code: 'store_unavailable',
    });
    gate.setSettings(rateLimitSettings({}, 'allow'));
    await expect(gate.take(principal(), limit)).resolves.toBeUndefined();
    expect(counted).toEqual(['store_down_refused', 'store_down_allowed']);
  });
});

describe('config rateLimits / rateLimitStoreDown', () => {
  const base = 'upstream: {url: "http://127.0.0.1:1"}\n';
  it('defaults: no limits, fail closed', () => {
    const c = parseConfig(base, 't');
    expect(c.rateLimits).toEqual({});
    expect(c.rateLimitStoreDown).toBe('refuse');
  });
  it('a role quota, windows in whole seconds', () => {
    const c = parseConfig(
      `${base}rateLimitStoreDown: allow\nrateLimits: {reader: {requests: 100, per: 1m}}\n`,
      't',
    );
    expect(c.rateLimits).toEqual({ reader: { requests: 100, perMs: 60_000 } });
    expect(c.rateLimitStoreDown).toBe('allow');
  });
  it.each([
    ['an unknown role', 'rateLimits: {nobody: {requests: 1, per: 1s}}', 'rateLimits.nobody'],
    ['__proto__', 'rateLimits: {__proto__: {requests: 1, per: 1s}}', 'rateLimits.__proto__'],
    ['constructor', 'rateLimits: {constructor: {requests: 1, per: 1s}}', 'rateLimits.constructor'],
    ['zero requests', 'rateLimits: {reader: {requests: 0, per: 1s}}', 'rateLimits.reader.requests'],
    ['a fraction', 'rateLimits: {reader: {requests: 1.5, per: 1s}}', 'rateLimits.reader.requests'],
    [
      'a sub-second window',
      'rateLimits: {reader: {requests: 1, per: 500ms}}',
      'rateLimits.reader.per',
    ],
    [
      'a fractional window',
      'rateLimits: {reader: {requests: 1, per: 1500ms}}',
      'rateLimits.reader.per',
    ],
    [
      'an extra field',
      'rateLimits: {reader: {requests: 1, per: 1s, burst: 2}}',
      'rateLimits.reader',
    ],
    ['a bad mode', 'rateLimitStoreDown: open', 'rateLimitStoreDown'],
  ])('refuses %s', (_what, yaml, path) => {
    expect(() => parseConfig(`${base}${yaml}\n`, 't')).toThrow(path);
  });
});

describe('account rate limit: CLI flag, stores', () => {
  it('--rate-limit N/duration or none', () => {
    expect(parseRateLimitFlag('100/1m')).toEqual({ requests: 100, perSeconds: 60 });
    expect(parseRateLimitFlag('5/30')).toEqual({ requests: 5, perSeconds: 30 });
    expect(parseRateLimitFlag('none')).toBeNull();
    for (const bad of [
      '',
      '100',
      '/1m',
      '100/',
      '100/500ms',
      '-1/1m',
      '1e3/1m',
      '100/1m ',
      'NONE',
      '100/1w',
    ])
      expect(parseRateLimitFlag(bad), bad).toBeUndefined();
    expect(formatRateLimit({ requests: 100, per_seconds: 60 })).toBe('100/60s');
    expect(formatRateLimit(null)).toBe('-');
  });

  it('property: the CLI flag parser never throws and yields whole, positive seconds', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const parsed = parseRateLimitFlag(text);
        if (parsed) expect(Number.isInteger(parsed.perSeconds)).toBe(true);
      }),
    );
  });

  it('Redis codec round-trips the override; an update with null clears it', () => {
    const account = {
      name: 'a',
      role: 'reader',
      description: '',
      disabled: false,
      createdAt: 1,
      updatedAt: 1,
      rateLimit: { requests: 7, perSeconds: 9 },
    };
    const pairs = encodeAccount(account);
    const hash = Object.fromEntries(
      pairs.flatMap((v, i) => (i % 2 === 0 ? [[v, pairs[i + 1] as string]] : [])),
    );
    expect(decodeAccount(hash)).toEqual(account);
    expect(decodeAccount({ ...hash, rate_limit: '' })).not.toHaveProperty('rateLimit');
    const cleared = applyAccountChange(account, { rateLimit: null, updatedAt: 2 });
    expect(cleared).not.toHaveProperty('rateLimit');
    expect(
      applyAccountChange(cleared, { rateLimit: { requests: 1, perSeconds: 1 }, updatedAt: 3 })
        .rateLimit,
    ).toEqual({
      requests: 1,
      perSeconds: 1,
    });
    // Unchanged when the change does not name it.
    expect(applyAccountChange(account, { updatedAt: 4 }).rateLimit).toEqual(account.rateLimit);
  });
});
