import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addressBucket } from '../../../src/keys/address-bucket.js';
import { FailureBudget } from '../../../src/keys/failure-budget.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const LIMITS = { perKeyId: 3, perAddress: 5, windowMs: 60_000 };

/** Charges until refused; returns how many were allowed. */
function drain(budget: FailureBudget, keyId: string, address: string, max = 100): number {
  let allowed = 0;
  while (allowed < max && budget.charge(keyId, address) !== null) allowed++;
  return allowed;
}

describe('FailureBudget', () => {
  it('allows perKeyId failures per id within the window, then refuses; the window slides', () => {
    const clock = new FakeClock();
    const budget = new FailureBudget(LIMITS, 100, clock);
    expect(budget.charge('id1', 'a')).not.toBeNull();
    clock.advance(30_000);
    expect(drain(budget, 'id1', 'b')).toBe(2);
    expect(budget.exhausted('id1', 'c')).toBe(true);
    expect(budget.exhausted('id2', 'c')).toBe(false);
    clock.advance(30_000); // the first failure is now exactly one window old
    expect(budget.exhausted('id1', 'c')).toBe(false);
    expect(drain(budget, 'id1', 'c')).toBe(1);
  });

  it('allows perAddress failures per address across ids', () => {
    const budget = new FailureBudget(LIMITS, 100, new FakeClock());
    let allowed = 0;
    for (let i = 0; i < 20; i++) if (budget.charge(`id${i}`, '203.0.113.9') !== null) allowed++;
    expect(allowed).toBe(5);
    expect(budget.exhausted('fresh', '203.0.113.9')).toBe(true);
    expect(budget.exhausted('fresh', '203.0.113.10')).toBe(false);
  });

  it('a refund gives the attempt back (it succeeded, or argon2 never ran)', () => {
    const budget = new FailureBudget(LIMITS, 100, new FakeClock());
    for (let i = 0; i < 10; i++) {
      const charge = budget.charge('id', 'a');
      expect(charge).not.toBeNull();
      budget.refund(charge!);
    }
    expect(drain(budget, 'id', 'a')).toBe(3);
  });

  it('memory is bounded, and flooding new addresses resets nobody: newcomers share one overflow budget', () => {
    const clock = new FakeClock();
    const budget = new FailureBudget(
      { perKeyId: 1_000_000, perAddress: 2, windowMs: 60_000 },
      4,
      clock,
    );
    expect(drain(budget, 'id', 'victim-of-own-making')).toBe(2); // an attacker spent its budget
    for (let i = 0; i < 3; i++) budget.charge('id', `10.0.0.${i}`);
    // The map is full of live entries: 10,000 further addresses get 2 failures between them.
    let allowed = 0;
    for (let i = 0; i < 10_000; i++)
      if (budget.charge('id', `2001:db8:${i.toString(16)}::1`) !== null) allowed++;
    expect(allowed).toBe(2);
    // ...and the first address is still refused: its entry was not evicted to make room.
    expect(budget.exhausted('id', 'victim-of-own-making')).toBe(true);
    expect(budget.charge('id', '10.0.0.0')).not.toBeNull(); // old entries keep their own budget
    // Once the window has passed, entries age out and newcomers get their own again.
    clock.advance(60_001);
    expect(drain(budget, 'id', 'newcomer')).toBe(2);
    expect(drain(budget, 'id', 'another')).toBe(2);
  });

  it('property: no name ever has more than its limit of unrefunded failures in any window', () => {
    const op = fc.record({
      keyId: fc.constantFrom('k1', 'k2', 'k3', '__proto__', 'constructor'),
      address: fc.constantFrom('192.0.2.1', '192.0.2.2', '::ffff:192.0.2.1', 'toString'),
      advance: fc.nat({ max: 40_000 }),
      refund: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const clock = new FakeClock();
        const budget = new FailureBudget(LIMITS, 1000, clock);
        const kept: Array<{ keyId: string; address: string; at: number }> = [];
        for (const o of ops) {
          clock.advance(o.advance);
          const charge = budget.charge(o.keyId, o.address);
          if (charge === null) continue;
          if (o.refund) budget.refund(charge);
          else kept.push({ keyId: o.keyId, address: addressBucket(o.address), at: clock.now() });
          const live = kept.filter((k) => k.at > clock.now() - LIMITS.windowMs);
          expect(live.filter((k) => k.keyId === o.keyId).length).toBeLessThanOrEqual(3);
          const bucket = addressBucket(o.address);
          expect(live.filter((k) => k.address === bucket).length).toBeLessThanOrEqual(5);
        }
      }),
    );
  });
});

/** An IPv6 address written with the longest run of zero groups compressed, as RFC 5952 does. */
function compressed(groups: number[], upper: boolean): string {
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => (upper ? g.toString(16).toUpperCase() : g.toString(16)));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
}

describe('addressBucket', () => {
  const groupsArb = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
    minLength: 8,
    maxLength: 8,
  });

  it('IPv4 counts per address; IPv4-mapped IPv6 counts as the IPv4 address', () => {
    expect(addressBucket('192.0.2.1')).toBe('192.0.2.1');
    expect(addressBucket('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(addressBucket('::FFFF:c000:0201')).toBe('192.0.2.1');
    expect(addressBucket('192.0.2.2')).not.toBe(addressBucket('192.0.2.1'));
  });

  it('IPv6 counts per /64, however the address is written (fast-check)', () => {
    fc.assert(
      fc.property(groupsArb, groupsArb, fc.boolean(), (a, b, upper) => {
        const full = a.map((g) => g.toString(16).padStart(4, '0')).join(':');
        const short = compressed(a, upper);
        expect(addressBucket(short)).toBe(addressBucket(full));
        // Same first 64 bits → same bucket; different → different (mapped IPv4 aside).
        const sameNet = [...a.slice(0, 4), ...b.slice(4)];
        const mapped = (g: number[]) => g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
        if (!mapped(a) && !mapped(sameNet))
          expect(addressBucket(compressed(sameNet, false))).toBe(addressBucket(full));
        const otherNet = [...b.slice(0, 4), ...a.slice(4)];
        if (!mapped(a) && !mapped(otherNet) && b.slice(0, 4).join() !== a.slice(0, 4).join())
          expect(addressBucket(compressed(otherNet, false))).not.toBe(addressBucket(full));
      }),
    );
  });

  it('a zone id names an interface, not a peer; a dotted tail is the last two groups', () => {
    expect(addressBucket('fe80::1%eth0')).toBe(addressBucket('fe80::2'));
    expect(addressBucket('64:ff9b::192.0.2.1')).toBe(addressBucket('64:ff9b::1'));
    expect(addressBucket('64:ff9b:0:0:1::192.0.2.1')).toBe('64:ff9b:0:0::/64');
  });

  it('anything else is its own bucket and never collides with an IP bucket', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const bucket = addressBucket(text);
        expect(typeof bucket).toBe('string');
        if (!bucket.startsWith('other:')) expect(bucket).toMatch(/^[0-9.]+$|^[0-9a-f:]+::\/64$/);
      }),
    );
    expect(addressBucket('')).toBe('other:');
    expect(addressBucket('__proto__')).toBe('other:__proto__');
  });
});
