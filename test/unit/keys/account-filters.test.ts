import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import {
  checkFilters,
  decodeFilters,
  encodeFilters,
  FILTER_KINDS,
  MAX_FILTER_BYTES,
  principalFilters,
  sameFilters,
} from '../../../src/keys/account-filters.js';

function refusal(raw: unknown, path?: string): string {
  try {
    checkFilters(raw, path);
  } catch (err) {
    expect(err).toBeInstanceOf(KeygateError);
    expect((err as KeygateError).code).toBe('bad_request');
    return (err as KeygateError).message;
  }
  throw new Error('accepted');
}

describe('checkFilters', () => {
  it('accepts every kind and returns a fresh object of the known kinds only', () => {
    const raw = {
      allocation: 'namespace:"team-a"',
      assets: 'label[team]:"a"',
      cloudCost: 'provider:"aws"',
    };
    const checked = checkFilters(raw);
    expect(checked).toEqual(raw);
    expect(checked).not.toBe(raw);
    expect(checkFilters({})).toEqual({});
  });

  it.each<[string, unknown, RegExp]>([
    ['not a mapping', 'namespace:"a"', /^filters: expected a mapping/],
    ['null', null, /^filters: expected a mapping/],
    ['a list', ['allocation'], /^filters: expected a mapping/],
    ['an unknown kind', { cost: 'x:"y"' }, /^filters\.cost: unknown filter kind/],
    ['odd case', { Allocation: 'x:"y"' }, /^filters\.Allocation: unknown filter kind/],
    ['odd case (cloudcost)', { cloudcost: 'x:"y"' }, /^filters\.cloudcost: unknown/],
    ['constructor', { constructor: 'x:"y"' }, /^filters\.constructor: unknown filter kind/],
    ['toString', { toString: 'x:"y"' }, /^filters\.toString: unknown filter kind/],
    ['a number', { allocation: 1 }, /^filters\.allocation: expected a filter expression/],
    ['null value', { allocation: null }, /^filters\.allocation: expected a filter expression/],
    ['an object value', { allocation: {} }, /^filters\.allocation: expected a filter/],
    ['empty', { allocation: '' }, /^filters\.allocation: empty/],
    ['blank', { assets: '  \t ' }, /^filters\.assets: /],
    ['a newline', { allocation: 'namespace:"a"\n' }, /^filters\.allocation: control char/],
    ['an escape', { allocation: 'namespace:"\u001b[2J"' }, /^filters\.allocation: control/],
    ['C1 control', { allocation: 'namespace:"\u0085"' }, /^filters\.allocation: control/],
    ['unbalanced (', { allocation: '(namespace:"a"' }, /^filters\.allocation: not a valid/],
    ['stray quote', { cloudCost: 'provider:"aws' }, /^filters\.cloudCost: not a valid/],
    [
      'too long',
      { allocation: `namespace:"${'a'.repeat(MAX_FILTER_BYTES)}"` },
      /^filters\.allocation: at most 4096 bytes/,
    ],
    [
      'too long in bytes, not characters',
      { allocation: `namespace:"${'é'.repeat(2100)}"` },
      /^filters\.allocation: at most 4096 bytes/,
    ],
  ])('refuses %s, naming the path', (_what, raw, message) => {
    expect(refusal(raw)).toMatch(message);
  });

  it('refuses __proto__ as a kind (an own key after JSON.parse), and pollutes nothing', () => {
    const raw = JSON.parse('{"__proto__": {"polluted": "yes"}}') as unknown;
    expect(refusal(raw)).toMatch(/^filters\.__proto__: unknown filter kind/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('names the path it is given (accounts files)', () => {
    expect(refusal({ x: '' }, 'accounts[3].filters')).toMatch(/^accounts\[3\]\.filters\.x: /);
  });

  it('echoes a long or odd kind only by its length', () => {
    const kind = `${'k'.repeat(50)}\u001b`;
    const message = refusal({ [kind]: 'a:"b"' });
    expect(message).toContain('(a kind of 51 characters)');
    expect(message).not.toContain('\u001b');
  });

  it('property: any kind outside the three is refused; any value is accepted only as given', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ maxLength: 40 }), {
          maxKeys: 4,
        }),
        (raw) => {
          const unknown = Object.keys(raw).some(
            (k) => !(FILTER_KINDS as readonly string[]).includes(k),
          );
          let checked: unknown;
          try {
            checked = checkFilters(raw);
          } catch (err) {
            expect((err as KeygateError).code).toBe('bad_request');
            expect((err as KeygateError).message).toMatch(/^filters(\.|:)/);
            return;
          }
          expect(unknown).toBe(false);
          // Accepted: exactly what was sent, no control characters, within the bound.
          expect(checked).toEqual(raw);
          for (const value of Object.values(raw)) {
            expect(Buffer.byteLength(value)).toBeLessThanOrEqual(MAX_FILTER_BYTES);
            expect(value.trim()).not.toBe('');
            // biome-ignore lint/suspicious/noControlCharactersInRegex: the property under test
            expect(value).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
          }
        },
      ),
    );
  });
});

describe('stored filters', () => {
  it('round-trip through the Redis encoding; none is ""', () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            allocation: fc.string({ minLength: 1 }),
            assets: fc.string({ minLength: 1 }),
            cloudCost: fc.string({ minLength: 1 }),
          },
          { requiredKeys: [] },
        ),
        (filters) => {
          const decoded = decodeFilters(encodeFilters(filters));
          if (Object.keys(filters).length === 0) expect(decoded).toBeUndefined();
          else expect(decoded).toEqual(filters);
        },
      ),
    );
    expect(encodeFilters({})).toBe('');
    expect(encodeFilters(undefined)).toBe('');
    expect(decodeFilters(undefined)).toBeUndefined();
    expect(decodeFilters('{}')).toBeUndefined();
  });

  it.each([
    'not json',
    '[]',
    'null',
    '"x"',
    '{"allocation": 1}',
    '{"Allocation": "x"}',
    '{"__proto__": "x"}',
  ])('fail closed on a malformed stored value %s: an error, never "unfiltered"', (text) => {
    expect(() => decodeFilters(text)).toThrow(
      expect.objectContaining({ code: 'store_unavailable' }),
    );
  });

  it('a principal carries a frozen copy, or undefined when nothing is filtered', () => {
    expect(principalFilters(undefined)).toBeUndefined();
    expect(principalFilters({})).toBeUndefined();
    const filters = { allocation: 'namespace:"a"' };
    const carried = principalFilters(filters);
    expect(carried).toEqual(filters);
    expect(carried).not.toBe(filters);
    expect(Object.isFrozen(carried)).toBe(true);
  });

  it('absent and {} are the same filters; any difference is not', () => {
    expect(sameFilters(undefined, {})).toBe(true);
    expect(sameFilters({ assets: 'a:"b"' }, { assets: 'a:"b"' })).toBe(true);
    expect(sameFilters({ assets: 'a:"b"' }, { assets: 'a:"c"' })).toBe(false);
    expect(sameFilters({ assets: 'a:"b"' }, {})).toBe(false);
  });
});
