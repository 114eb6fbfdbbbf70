import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseRequestId } from '../../../src/forward/request-headers.js';
import { generateKey } from '../../../src/keys/key-format.js';
import { registerIssuedKey, secretHalf } from '../../helpers/captured-logs.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

// A client id is logged, echoed to the client and forwarded upstream; a key matches the
// "safe token" pattern, so the pattern alone would let one through.
describe('chooseRequestId never uses an id that holds a secret', () => {
  const key = generateKey('kg').full;
  registerIssuedKey(key);

  it.each([
    ['a key', key],
    ['a key glued to a prefix (trace-<key>)', `trace-${key}`],
    ['a key glued to word characters (a_<key>x)', `a_${key}x`],
    ['the secret half alone', secretHalf(key)],
    ['43 base62 characters (a secret without its checksum)', 'A'.repeat(43)],
  ])('replaces %s with a fresh id', (_name, value) => {
    const id = chooseRequestId(['X-Request-Id', value]);
    expect(id).toMatch(UUID);
    expect(id.includes(secretHalf(key))).toBe(false);
  });

  it('keeps ordinary tracing ids: UUIDs, 32-hex trace ids, 42-character runs', () => {
    for (const value of [
      '3f0e4c1a-8d2b-4e7f-9a6c-1b2d3e4f5a6b',
      '4bf92f3577b34da6a3ce929d0e0e4736',
      'x'.repeat(42),
      'ci-run-42.step_3',
    ]) {
      expect(chooseRequestId(['x-request-id', value])).toBe(value);
    }
  });

  it('property: whatever surrounds a secret-length run, the id given back does not contain it', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(...`${BASE62}._:-`), maxLength: 40 }),
        fc.string({ unit: fc.constantFrom(...BASE62), minLength: 43, maxLength: 49 }),
        fc.string({ unit: fc.constantFrom(...`${BASE62}._:-`), maxLength: 40 }),
        (before, secret, after) => {
          const id = chooseRequestId(['X-Request-Id', `${before}${secret}${after}`]);
          expect(id.includes(secret)).toBe(false);
        },
      ),
    );
  });
});
