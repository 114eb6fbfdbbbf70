import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import { generateKey } from '../../../src/keys/key-format.js';
import { carriesKey, decodeOnce, refuseMisplacedKeys } from '../../../src/keys/key-in-request.js';

const key = generateKey('kg').full;
const other = generateKey('acme').full; // another deployment's key: not ours to refuse

function pct(c: string, lower = false): string {
  const hex = c.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${lower ? hex : hex.toUpperCase()}`;
}
const encodeAll = (text: string, lower = false) => [...text].map((c) => pct(c, lower)).join('');

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof KeygateError) return err.code;
    throw err;
  }
}

describe('carriesKey: keys in a request target, in any encoding', () => {
  it.each([
    ['raw in the query', `/model/allocation?api_key=${key}`],
    ['raw in the path, glued to word characters', `/model/a_${key}x`],
    ['separators encoded in the path (kg%5F…)', `/model/${key.replaceAll('_', '%5F')}`],
    ['separators encoded, lower-case hex', `/m?k=${key.replaceAll('_', '%5f')}`],
    ['every character encoded', `/m?k=${encodeAll(key)}`],
    ['every character encoded, lower-case', `/m/${encodeAll(key, true)}`],
    ['double-encoded (kg%255F…)', `/m?k=${key.replaceAll('_', '%255F')}`],
    ['every character double-encoded', `/m?k=${encodeAll(key).replaceAll('%', '%25')}`],
    ['triple-encoded', `/m?k=${key.replaceAll('_', '%25255F')}`],
    ['IIS-style %u escapes', `/m?k=${key.replaceAll('_', '%u005F')}`],
  ])('finds a key %s', (_name, target) => {
    expect(carriesKey(target, 'kg')).toBe(true);
  });

  it.each([
    ['no key', '/model/allocation?window=7d&aggregate=namespace'],
    ['a look-alike (kg_7d)', '/model/allocation?window=kg_7d'],
    ['a wrong checksum', `/m?k=${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`],
    ['a truncated key', `/m?k=${key.slice(0, -2)}`],
    ["another deployment's prefix", `/m?k=${other}`],
    ['a malformed escape', '/m?k=%ZZ%%4'],
  ])('passes %s', (_name, target) => {
    expect(carriesKey(target, 'kg')).toBe(false);
  });

  it('decodeOnce decodes ASCII escapes only and keeps malformed ones', () => {
    expect(decodeOnce('a%5Fb%5fc%zz%4%C3%A9%u0041')).toBe('a_b_c%zz%4%C3%A9A');
    expect(decodeOnce('plain')).toBe('plain');
  });

  it('property: any encoding (up to three layers per character) in any surroundings is found', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: key.length, maxLength: key.length }),
        fc.boolean(),
        fc.string(),
        (before, layers, lower, after) => {
          // Depth d: "%" followed by d-1 "25"s, then the hex (d-fold percent-encoding).
          const encoded = [...key]
            .map((c, i) => {
              const depth = layers[i] ?? 0;
              return depth === 0 ? c : pct(c, lower).replace('%', `%${'25'.repeat(depth - 1)}`);
            })
            .join('');
          expect(carriesKey(`/${before}${encoded}${after}`, 'kg')).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: a key with one character changed is never reported (look-alikes pass)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: key.length - 1 }),
        fc.constantFrom(...'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'),
        (at, c) => {
          fc.pre(key[at] !== c && key[at] !== '_');
          const altered = key.slice(0, at) + c + key.slice(at + 1);
          // A 1-in-62^6 chance the new checksum matches; CRC-32 detects every single change.
          expect(carriesKey(`/m?k=${encodeAll(altered)}`, 'kg')).toBe(false);
        },
      ),
    );
  });
});

describe('refuseMisplacedKeys', () => {
  const ok = (url: string, headers: string[]) =>
    codeOf(() => refuseMisplacedKeys(url, headers, 'kg'));

  it('refuses a key in the URL whatever the headers say (none, invalid, valid)', () => {
    const url = `/model/allocation?k=${encodeAll(key)}`;
    expect(ok(url, [])).toBe('credential_in_url');
    expect(ok(url, ['X-API-KEY', 'junk'])).toBe('credential_in_url');
    expect(ok(url, ['X-API-KEY', key])).toBe('credential_in_url');
  });

  it('leaves the credential headers alone, in any case or with "_"', () => {
    for (const name of [
      'X-API-KEY',
      'x-api-key',
      'X_Api_Key',
      'Authorization',
      'proxy-authorization',
      'Cookie',
    ]) {
      expect(ok('/model/allocation', [name, `Bearer ${key}`]), name).toBeUndefined();
    }
  });

  it.each([
    'X-Debug',
    'Referer',
    'User-Agent',
    'X-Request-Id',
    '__proto__',
    'constructor',
    '0',
    'x-api-key-2',
    'X-Forwarded-For',
  ])('refuses a key in a forwarded header (%s), raw or encoded', (name) => {
    expect(ok('/model/allocation', [name, key])).toBe('credential_in_header');
    expect(ok('/model/allocation', [name, `https://x/?k=${key.replaceAll('_', '%255F')}`])).toBe(
      'credential_in_header',
    );
    expect(ok('/model/allocation', ['X-API-KEY', key, name, `a_${key}x`])).toBe(
      'credential_in_header',
    );
  });

  it('refuses a key as a header name, or split between name and value (both are forwarded)', () => {
    expect(ok('/m', ['X-API-KEY', key, key, '1'])).toBe('credential_in_header');
    expect(ok('/m', [key.replaceAll('_', '%5F'), ''])).toBe('credential_in_header');
    for (const at of [3, 17, 30, key.length - 1]) {
      expect(ok('/m', [key.slice(0, at), key.slice(at)]), `split at ${at}`).toBe(
        'credential_in_header',
      );
    }
    // A name that is a look-alike, next to a value that completes nothing, passes.
    expect(ok('/m', ['kg_7d', key.slice(6), 'X-API-KEY', key])).toBeUndefined();
  });

  it('passes look-alikes and other deployments’ keys in headers', () => {
    expect(ok('/m', ['X-Debug', 'kg_7d', 'X-Other', other, 'X-Trunc', key.slice(0, -1)])).toBe(
      undefined,
    );
  });
});
