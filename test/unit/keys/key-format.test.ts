import { describe, expect, it } from 'vitest';
import { containsKey, generateKey, parseKey } from '../../../src/keys/key-format.js';

describe('key format', () => {
  it('generates <prefix>_<12 id>_<43 secret><6 checksum> that parses back', () => {
    for (let i = 0; i < 200; i++) {
      const key = generateKey('kg');
      expect(key.full).toMatch(/^kg_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$/);
      expect(parseKey(key.full, 'kg')).toEqual({ id: key.id, full: key.full });
    }
  });

  it('generates distinct ids and secrets', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => generateKey('kg').full));
    const ids = new Set([...keys].map((k) => k.slice(3, 15)));
    expect(keys.size).toBe(1000);
    expect(ids.size).toBe(1000);
  });

  it('rejects every single-character change (the CRC32 checksum catches typos)', () => {
    const { full } = generateKey('kg');
    for (let i = 0; i < full.length; i++) {
      const c = full[i] === 'x' ? 'y' : 'x';
      expect(parseKey(full.slice(0, i) + c + full.slice(i + 1), 'kg')).toBeNull();
    }
  });

  it.each([
    ['empty', ''],
    ['too short', 'kg_abc'],
    ['wrong prefix', `zz${generateKey('kg').full.slice(2)}`],
    ['one char too long', `${generateKey('kg').full}a`],
    [
      'non-base62 character',
      `${generateKey('kg').full.slice(0, 20)}-${generateKey('kg').full.slice(21)}`,
    ],
    ['missing separator', generateKey('kg').full.replace('_', '-')],
  ])('rejects %s', (_name, candidate) => {
    expect(parseKey(candidate, 'kg')).toBeNull();
  });

  it('honours a custom prefix', () => {
    const key = generateKey('acme');
    expect(parseKey(key.full, 'acme')?.id).toBe(key.id);
    expect(parseKey(key.full, 'kg')).toBeNull();
  });

  it('finds a real key inside a URL but not a look-alike', () => {
    const key = generateKey('kg').full;
    expect(containsKey(`/model/allocation?x=1&api_key=${key}&y=2`, 'kg')).toBe(true);
    expect(containsKey(`/model/${key}`, 'kg')).toBe(true);
    // A different last character breaks the checksum (replacing it with itself would not).
    const other = key.endsWith('Q') ? 'R' : 'Q';
    expect(containsKey(`/model/allocation?x=${key.slice(0, -1)}${other}`, 'kg')).toBe(false);
    expect(containsKey('/model/allocation?window=kg_7d', 'kg')).toBe(false);
  });
});
