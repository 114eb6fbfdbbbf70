import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import { InflightLimit } from '../../../src/policy/inflight-limit.js';

/** Account names an attacker cannot choose, but a map keyed by them must survive anyway. */
const account = fc.oneof(
  fc.constantFrom(...Object.getOwnPropertyNames(Object.prototype), 'constructor', '0', ''),
  fc.string({ maxLength: 8 }),
);

describe('InflightLimit', () => {
  it('refuses the request over the bound with 429 too_many_inflight; other accounts unaffected', () => {
    const limit = new InflightLimit(2);
    limit.acquire('a');
    limit.acquire('a');
    expect(() => limit.acquire('a')).toThrowError(KeygateError);
    try {
      limit.acquire('a');
    } catch (err) {
      expect((err as KeygateError).code).toBe('too_many_inflight');
      expect((err as KeygateError).status).toBe(429);
    }
    expect(() => limit.acquire('b')).not.toThrow();
    expect(limit.inflight('a')).toBe(2);
    expect(limit.inflight('__proto__')).toBe(0);
  });

  it('matches a model under any sequence of acquires and (repeated) releases', () => {
    type Op = { kind: 'acquire'; account: string } | { kind: 'release'; index: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      account.map((a) => ({ kind: 'acquire' as const, account: a })),
      fc.nat({ max: 40 }).map((index) => ({ kind: 'release' as const, index })),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 60 }), (max, ops) => {
        const limit = new InflightLimit(max);
        const model = new Map<string, number>();
        const handles: Array<{ account: string; release: () => void; released: boolean }> = [];
        for (const o of ops) {
          if (o.kind === 'acquire') {
            const held = model.get(o.account) ?? 0;
            if (held >= max) {
              expect(() => limit.acquire(o.account)).toThrowError(KeygateError);
            } else {
              handles.push({
                account: o.account,
                release: limit.acquire(o.account),
                released: false,
              });
              model.set(o.account, held + 1);
            }
          } else if (handles.length > 0) {
            const h = handles[o.index % handles.length] as (typeof handles)[number];
            h.release(); // a second release of the same handle must change nothing
            if (!h.released) {
              h.released = true;
              model.set(h.account, (model.get(h.account) ?? 0) - 1);
            }
          }
          for (const [name, count] of model) expect(limit.inflight(name)).toBe(count);
        }
        for (const h of handles) {
          h.release();
          h.release();
        }
        // Nothing leaks: the map is empty and every account has its whole bound again.
        expect(limit.accounts).toBe(0);
        for (const name of model.keys()) {
          for (let i = 0; i < max; i++) limit.acquire(name);
          expect(() => limit.acquire(name)).toThrowError(KeygateError);
        }
      }),
    );
  });
});
