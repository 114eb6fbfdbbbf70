import { describe, expect, it } from 'vitest';
import { TtlCache } from '../../../src/shared/ttl-cache.js';

describe('TtlCache', () => {
  it('expires entries at their time', () => {
    const cache = new TtlCache<string, number>(10);
    cache.set('a', 1, 100);
    expect(cache.get('a', 99)).toBe(1);
    expect(cache.get('a', 100)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('evicts the least recently used entry when full', () => {
    const cache = new TtlCache<string, number>(2);
    cache.set('a', 1, 1000);
    cache.set('b', 2, 1000);
    cache.get('a', 0); // a is now the most recent
    cache.set('c', 3, 1000);
    expect(cache.get('b', 0)).toBeUndefined();
    expect(cache.get('a', 0)).toBe(1);
    expect(cache.get('c', 0)).toBe(3);
  });

  it('deletes by predicate', () => {
    const cache = new TtlCache<string, { account: string }>(10);
    cache.set('1', { account: 'x' }, 1000);
    cache.set('2', { account: 'y' }, 1000);
    expect(cache.deleteWhere((v) => v.account === 'x')).toBe(1);
    expect(cache.get('1', 0)).toBeUndefined();
    expect(cache.get('2', 0)).toEqual({ account: 'y' });
  });
});
