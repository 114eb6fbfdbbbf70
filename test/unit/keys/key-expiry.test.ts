import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  countExpiring,
  expiresWithin,
  KeyExpiryMonitor,
  type KeyExpiryMonitorOptions,
  type Ticker,
} from '../../../src/keys/key-expiry.js';
import type { KeyRecord } from '../../../src/store/key-store.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { MemoryKeyStore } from '../../helpers/memory-key-store.js';
import { parsePrometheusText, series } from '../../helpers/prom-text.js';

const DAY = 86_400;
let n = 0;

function key(account: string, fields: Partial<KeyRecord>): KeyRecord {
  n++;
  return {
    id: `k${String(n).padStart(11, '0')}`,
    account,
    hash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA',
    description: '',
    scopes: null,
    createdAt: 1,
    expiresAt: 0,
    revokedAt: 0,
    lastUsedAt: 0,
    replacedBy: '',
    generation: 1,
    ...fields,
  };
}

function storeWith(keys: KeyRecord[]): MemoryKeyStore {
  const store = new MemoryKeyStore();
  for (const k of keys) {
    if (!store.accounts.has(k.account))
      store.accounts.set(k.account, {
        name: k.account,
        role: 'reader',
        description: '',
        disabled: false,
        createdAt: 1,
        updatedAt: 1,
      });
    store.keys.set(k.id, k);
  }
  return store;
}

/** A ticker the test fires by hand: no real timer, no waiting. */
class ManualTicker implements Ticker {
  runs: Array<() => void> = [];
  stopped = 0;
  intervalMs = 0;
  every(ms: number, run: () => void) {
    this.intervalMs = ms;
    this.runs.push(run);
    return { stop: () => void this.stopped++ };
  }
}

/** A monitor publishing into `metrics`, driven by a ManualTicker (the tests call refresh()). */
function monitorOf(
  options: Omit<KeyExpiryMonitorOptions, 'publish'>,
  metrics: Metrics,
  ticker = new ManualTicker(),
): KeyExpiryMonitor {
  return new KeyExpiryMonitor({ ...options, publish: (c) => metrics.keysExpiring(c) }, ticker);
}

async function scrape(metrics: Metrics): Promise<Map<string, number>> {
  return parsePrometheusText(await metrics.render());
}

describe('keygate_keys_expiring', () => {
  it('counts per account, window and in_use; revoked, expired and never-expiring keys drop out', async () => {
    const clock = new FakeClock();
    const now = clock.seconds;
    const store = storeWith([
      key('nightly', { expiresAt: now + 3 * DAY, lastUsedAt: now - 3600 }), // 7d, in use
      key('nightly', { expiresAt: now + 3600, lastUsedAt: now - 60 }), // 1d and 7d, in use
      key('nightly', { expiresAt: now + 2 * DAY }), // 7d, never used
      key('nightly', { expiresAt: now + 2 * DAY, lastUsedAt: now - 30 * DAY }), // 7d, used long ago
      key('nightly', { expiresAt: now + DAY, revokedAt: now - 1, lastUsedAt: now }), // revoked
      key('nightly', { expiresAt: now - 1, lastUsedAt: now - 2 }), // expired
      key('dash', { expiresAt: 0, lastUsedAt: now }), // never expires
      key('dash', { expiresAt: now + 30 * DAY, lastUsedAt: now }), // beyond 7d
    ]);
    const metrics = new Metrics({});
    const ticker = new ManualTicker();
    const monitor = monitorOf(
      { store, clock, intervalMs: 300_000, inUseSeconds: 7 * DAY },
      metrics,
      ticker,
    );
    monitor.start();
    await monitor.refresh();
    const m = await scrape(metrics);
    const at = (account: string, within: string, inUse: string) =>
      m.get(series('keygate_keys_expiring', { account, within, in_use: inUse }));
    expect(at('nightly', '7d', 'true')).toBe(2);
    expect(at('nightly', '1d', 'true')).toBe(1);
    expect(at('nightly', '7d', 'false')).toBe(2);
    expect(at('nightly', '1d', 'false')).toBeUndefined();
    expect([...m.keys()].filter((k) => k.startsWith('keygate_keys_expiring{'))).toHaveLength(3);
    expect([...m.keys()].some((k) => k.includes('dash'))).toBe(false);
    // No key id anywhere in the exposition: per account, never per key.
    for (const k of store.keys.keys()) expect(await metrics.render()).not.toContain(k);
    expect(ticker.intervalMs).toBe(300_000);
    await monitor.close();
    expect(ticker.stopped).toBe(1);
  });

  it('a refresh after the keys expire (time moved on) or are revoked drops the account', async () => {
    const clock = new FakeClock();
    const now = clock.seconds;
    const soon = key('nightly', { expiresAt: now + DAY, lastUsedAt: now });
    const other = key('batch', { expiresAt: now + 2 * DAY, lastUsedAt: now });
    const store = storeWith([soon, other]);
    const metrics = new Metrics({});
    const ticker = new ManualTicker();
    const monitor = monitorOf(
      { store, clock, intervalMs: 60_000, inUseSeconds: DAY },
      metrics,
      ticker,
    );
    monitor.start();
    await monitor.refresh();
    expect(
      (await scrape(metrics)).get(
        series('keygate_keys_expiring', { account: 'nightly', within: '7d', in_use: 'true' }),
      ),
    ).toBe(1);
    store.keys.set(other.id, { ...other, revokedAt: now });
    clock.advance((DAY + 1) * 1000);
    ticker.runs[0]?.();
    await monitor.refresh();
    const text = await metrics.render();
    expect(text).not.toMatch(/^keygate_keys_expiring\{/m);
  });

  it('a failed scan keeps the last counts and reports the error', async () => {
    const clock = new FakeClock();
    const store = storeWith([
      key('nightly', { expiresAt: clock.seconds + DAY, lastUsedAt: clock.seconds }),
    ]);
    const metrics = new Metrics({});
    const errors: unknown[] = [];
    const monitor = monitorOf(
      { store, clock, intervalMs: 60_000, inUseSeconds: DAY, onError: (e) => errors.push(e) },
      metrics,
    );
    await monitor.refresh();
    store.down = true;
    await monitor.refresh();
    expect(errors).toHaveLength(1);
    expect(
      (await scrape(metrics)).get(
        series('keygate_keys_expiring', { account: 'nightly', within: '1d', in_use: 'true' }),
      ),
    ).toBe(1);
  });

  it('metrics.accountLabel off: one "_all" series per window and in_use, summed', async () => {
    const clock = new FakeClock();
    const now = clock.seconds;
    const metrics = new Metrics({ accountLabel: false });
    metrics.keysExpiring(
      countExpiring(
        [
          key('a', { expiresAt: now + DAY, lastUsedAt: now }),
          key('b', { expiresAt: now + DAY, lastUsedAt: now }),
        ],
        now,
        DAY,
      ),
    );
    const m = await scrape(metrics);
    expect(
      m.get(series('keygate_keys_expiring', { account: '_all', within: '7d', in_use: 'true' })),
    ).toBe(2);
    expect([...m.keys()].filter((k) => k.startsWith('keygate_keys_expiring{'))).toHaveLength(2);
  });

  it('property: series are bounded by accounts × 2 × 2, whatever the keys (hostile account names too)', () => {
    const account = fc.oneof(
      fc.constantFrom('__proto__', 'constructor', 'toString', '0', 'a'),
      fc.stringMatching(/^[a-z][a-z0-9_-]{0,8}$/),
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            account,
            expiresIn: fc.integer({ min: -10 * DAY, max: 40 * DAY }),
            usedAgo: fc.integer({ min: 0, max: 40 * DAY }),
            revoked: fc.boolean(),
            never: fc.boolean(),
          }),
          { maxLength: 60 },
        ),
        (specs) => {
          const now = 1_800_000_000;
          const keys = specs.map((s) =>
            key(s.account, {
              expiresAt: s.never ? 0 : now + s.expiresIn,
              lastUsedAt: now - s.usedAgo,
              revokedAt: s.revoked ? now - 1 : 0,
            }),
          );
          const counts = countExpiring(keys, now, 7 * DAY);
          const accounts = new Set(specs.map((s) => s.account));
          expect(counts.length).toBeLessThanOrEqual(accounts.size * 4);
          for (const w of [
            ['1d', DAY],
            ['7d', 7 * DAY],
          ] as const) {
            const total = counts.filter((c) => c.within === w[0]).reduce((a, c) => a + c.count, 0);
            expect(total).toBe(keys.filter((k) => expiresWithin(k, now, w[1])).length);
          }
          for (const c of counts) expect(c.count).toBeGreaterThan(0);
        },
      ),
    );
  });
});
