import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nullProtoRecord, ownEntry } from '../../../src/shared/null-proto-record.js';

const PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype);

describe('nullProtoRecord', () => {
  it('property: any key, including every Object.prototype name, is an own entry and nothing else', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.oneof(fc.constantFrom(...PROTO_NAMES), fc.string()), fc.integer())),
        (entries) => {
          const record = nullProtoRecord<number>(entries);
          const expected = new Map(entries);
          expect(Object.getPrototypeOf(record)).toBeNull();
          expect(Object.keys(record).sort()).toEqual([...expected.keys()].sort());
          for (const [key, value] of expected) expect(record[key]).toBe(value);
          for (const name of PROTO_NAMES) {
            if (!expected.has(name)) expect(record[name]).toBeUndefined();
          }
          expect(JSON.parse(JSON.stringify(record))).toEqual(Object.fromEntries(expected));
        },
      ),
    );
  });
});

describe('ownEntry', () => {
  it('finds own entries only', () => {
    const roles: Record<string, readonly string[]> = { reader: ['read'] };
    expect(ownEntry(roles, 'reader')).toEqual(['read']);
    for (const name of PROTO_NAMES) expect(ownEntry(roles, name)).toBeUndefined();
  });
});
