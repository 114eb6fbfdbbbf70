import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import {
  HASH_BOUNDS,
  parseAccountsFile,
  validateAccounts,
} from '../../../src/keys/accounts-file.js';
import { generateKey } from '../../../src/keys/key-format.js';

const ROLES = { admin: ['read', 'write', 'admin'], member: ['read', 'write'], reader: ['read'] };
const CONTEXT = { roles: ROLES, prefix: 'kg' };
const HASH =
  '$argon2id$v=19$m=19456,t=2,p=1$LxxElJM1BZbogKI04yv4bQ$xEjTv8zPjaqzitZN5H7+i7W5aiMM/a9ZXRKANfYDiG0';
const hashWith = (m: number, t: number, p: number) =>
  HASH.replace('m=19456,t=2,p=1', `m=${m},t=${t},p=${p}`);

const GOOD = `
accounts:
  - name: ci-nightly
    role: member
    description: nightly cost report
    keys:
      - id: AbCdEf123456
        hash: "${HASH}"
        description: nightly job
        expires_at: 1798761600
        scopes: [read]
  - name: dash
    role: reader
`;

function refusal(source: string): string {
  try {
    parseAccountsFile(source, CONTEXT);
  } catch (err) {
    expect(err).toBeInstanceOf(KeygateError);
    expect((err as KeygateError).code).toBe('bad_request');
    return (err as KeygateError).message;
  }
  throw new Error('the file was accepted');
}

describe('accounts file validation', () => {
  it('accepts the documented format and fills the defaults', () => {
    const accounts = parseAccountsFile(GOOD, CONTEXT);
    expect(accounts).toEqual([
      {
        name: 'ci-nightly',
        role: 'member',
        description: 'nightly cost report',
        disabled: false,
        filters: {},
        keys: [
          {
            id: 'AbCdEf123456',
            hash: HASH,
            description: 'nightly job',
            expiresAt: 1798761600,
            scopes: ['read'],
          },
        ],
      },
      { name: 'dash', role: 'reader', description: '', disabled: false, filters: {}, keys: [] },
    ]);
  });

  it('accepts JSON (it is YAML) and the hash bounds themselves', () => {
    const json = JSON.stringify({
      accounts: [
        {
          name: 'a',
          role: 'reader',
          keys: [
            {
              id: 'AAAAAAAAAAAA',
              hash: hashWith(HASH_BOUNDS.maxMemoryKiB, HASH_BOUNDS.maxTime, 16),
            },
            { id: 'BBBBBBBBBBBB', hash: hashWith(HASH_BOUNDS.minMemoryKiB, 1, 1) },
          ],
        },
      ],
    });
    expect(parseAccountsFile(json, CONTEXT)[0]?.keys).toHaveLength(2);
  });

  const key = generateKey('kg');
  const withKey = (fields: string) =>
    `accounts:\n  - name: ci\n    role: member\n    keys:\n      - id: AbCdEf123456\n${fields}`;
  const BROKEN: Array<[string, string, RegExp]> = [
    ['bad YAML', 'accounts:\n  - name: [unclosed\n', /^line \d+, column \d+: not valid YAML/],
    [
      'duplicate YAML key',
      'accounts: []\naccounts: []\n',
      /^line \d+, column \d+: not valid YAML \(DUPLICATE_KEY\)/,
    ],
    [
      'unknown tag',
      'accounts:\n  - name: !secret a\n    role: reader\n',
      /^line 2, column 11: not valid YAML \(TAG_RESOLVE_FAILED\)/,
    ],
    [
      'alias bomb',
      `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [${'*a, '.repeat(10)}*a]\nc: &c [${'*b, '.repeat(10)}*b]\naccounts: [*c]\n`,
      /^\(file\): not valid YAML|^line/,
    ],
    ['not a mapping', '- a\n', /^\(file\): expected a mapping/],
    ['empty file', '', /^\(file\): expected a mapping/],
    ['unknown top-level key', 'accounts: []\nprune: true\n', /^\(file\)\.prune: unknown field/],
    ['accounts not a list', 'accounts: {}\n', /^accounts: expected a list/],
    [
      'unknown account key',
      'accounts:\n  - name: a\n    role: reader\n    rol: x\n',
      /^accounts\[0\]\.rol: unknown field/,
    ],
    [
      'unknown key field',
      withKey(`        hash: "${HASH}"\n        expires: 5\n`),
      /^accounts\[0\]\.keys\[0\]\.expires: unknown field/,
    ],
    [
      'bad name',
      'accounts:\n  - name: CI_Nightly\n    role: reader\n',
      /^accounts\[0\]\.name: expected 1-63/,
    ],
    [
      'name not a string',
      'accounts:\n  - name: 12\n    role: reader\n',
      /^accounts\[0\]\.name: expected a string/,
    ],
    [
      'duplicate name',
      'accounts:\n  - {name: a, role: reader}\n  - {name: a, role: admin}\n',
      /^accounts\[1\]\.name: "a" is listed twice/,
    ],
    [
      'unknown role',
      'accounts:\n  - name: a\n    role: owner\n',
      /^accounts\[0\]\.role: unknown role "owner"/,
    ],
    [
      'prototype role',
      'accounts:\n  - name: a\n    role: constructor\n',
      /^accounts\[0\]\.role: unknown role/,
    ],
    [
      'disabled not boolean',
      'accounts:\n  - {name: a, role: reader, disabled: "no"}\n',
      /^accounts\[0\]\.disabled: expected true or false/,
    ],
    [
      'scope not in role',
      'accounts:\n  - name: a\n    role: reader\n    keys:\n      - id: AbCdEf123456\n        hash: "' +
        HASH +
        '"\n        scopes: [read, write]\n',
      /^accounts\[0\]\.keys\[0\]\.scopes: a scope not granted by role "reader"/,
    ],
    [
      'scopes not a list',
      withKey(`        hash: "${HASH}"\n        scopes: read\n`),
      /^accounts\[0\]\.keys\[0\]\.scopes: expected a list/,
    ],
    [
      'bad key id',
      'accounts:\n  - name: a\n    role: reader\n    keys:\n      - {id: short, hash: "' +
        HASH +
        '"}\n',
      /^accounts\[0\]\.keys\[0\]\.id: expected the 12-character/,
    ],
    [
      'duplicate id across accounts',
      `accounts:\n  - name: a\n    role: reader\n    keys:\n      - {id: AbCdEf123456, hash: "${HASH}"}\n  - name: b\n    role: reader\n    keys:\n      - {id: AbCdEf123456, hash: "${HASH}"}\n`,
      /^accounts\[1\]\.keys\[0\]\.id: key id AbCdEf123456 is listed twice/,
    ],
    [
      'hash missing',
      withKey('        description: x\n'),
      /^accounts\[0\]\.keys\[0\]\.hash: expected an argon2id hash/,
    ],
    [
      'hash not argon2id (argon2i)',
      withKey(`        hash: "${HASH.replace('argon2id', 'argon2i')}"\n`),
      /^accounts\[0\]\.keys\[0\]\.hash: expected an argon2id PHC string/,
    ],
    [
      'hash is bcrypt',
      withKey('        hash: "$2b$10$abcdefghijklmnopqrstuuWm1wq8vA1ZbkBo4ZmaCM1y7VKI5cEyu"\n'),
      /^accounts\[0\]\.keys\[0\]\.hash: expected an argon2id PHC string/,
    ],
    [
      'huge m (4 GiB)',
      withKey(`        hash: "${hashWith(4 * 1024 * 1024, 2, 1)}"\n`),
      /^accounts\[0\]\.keys\[0\]\.hash: m \(memory, KiB\) must be from 1024 to 262144/,
    ],
    [
      'tiny m',
      withKey(`        hash: "${hashWith(8, 2, 1)}"\n`),
      /^accounts\[0\]\.keys\[0\]\.hash: m \(memory/,
    ],
    [
      'huge t',
      withKey(`        hash: "${hashWith(19456, 1000, 1)}"\n`),
      /^accounts\[0\]\.keys\[0\]\.hash: t \(passes\)/,
    ],
    [
      'huge p',
      withKey(`        hash: "${hashWith(262144, 2, 255)}"\n`),
      /^accounts\[0\]\.keys\[0\]\.hash: p \(lanes\)/,
    ],
    [
      'plaintext key in hash',
      withKey(`        hash: "${key.full}"\n`),
      /^accounts\[0\]\.keys\[0\]\.hash: this is an API key, not its hash/,
    ],
    [
      'expires_at in ms',
      withKey(`        hash: "${HASH}"\n        expires_at: 1798761600000000\n`),
      /^accounts\[0\]\.keys\[0\]\.expires_at: expected Unix seconds/,
    ],
    [
      'expires_at negative',
      withKey(`        hash: "${HASH}"\n        expires_at: -1\n`),
      /^accounts\[0\]\.keys\[0\]\.expires_at: expected Unix seconds/,
    ],
    [
      'expires_at a string',
      withKey(`        hash: "${HASH}"\n        expires_at: "2027-01-01"\n`),
      /^accounts\[0\]\.keys\[0\]\.expires_at: expected Unix seconds/,
    ],
    [
      'description too long',
      `accounts:\n  - {name: a, role: reader, description: "${'x'.repeat(201)}"}\n`,
      /^accounts\[0\]\.description: at most 200/,
    ],
    [
      '__proto__ as account name',
      'accounts:\n  - name: __proto__\n    role: reader\n',
      /^accounts\[0\]\.name: expected 1-63/,
    ],
    [
      '__proto__ as account field',
      'accounts:\n  - name: a\n    role: reader\n    __proto__: {role: admin}\n',
      /^accounts\[0\]\.__proto__: unknown field/,
    ],
    [
      '__proto__ as key field',
      withKey(`        hash: "${HASH}"\n        __proto__: {scopes: [admin]}\n`),
      /^accounts\[0\]\.keys\[0\]\.__proto__: unknown field/,
    ],
    [
      'constructor as top-level field',
      'constructor: 1\naccounts: []\n',
      /^\(file\)\.constructor: unknown field/,
    ],
  ];

  it.each(BROKEN)('%s: refused naming the path', (_what, source, message) => {
    expect(refusal(source)).toMatch(message);
  });

  it('never repeats the hash field value, whatever it holds', () => {
    for (const value of [
      key.full,
      `x${key.full}`,
      hashWith(4 * 1024 * 1024, 2, 1),
      'not-a-hash-SECRETVALUE',
    ]) {
      const message = refusal(withKey(`        hash: "${value}"\n`));
      expect(message).not.toContain(value);
    }
    // Nor does a YAML syntax error quote the line the key is on.
    const broken = refusal(`accounts:\n  - hash: "${key.full}\n    x: [\n`);
    expect(broken).not.toContain(key.full);
  });

  it('prints no YAML warning of its own (it would quote the file): a tag holding a key', () => {
    const warn = vi.spyOn(process, 'emitWarning');
    try {
      const message = refusal(`accounts:\n  - name: !${key.full} a\n    role: reader\n`);
      expect(message).not.toContain(key.full);
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
  });

  it('never echoes a field name that could carry a secret', () => {
    const message = refusal(`accounts:\n  - name: a\n    role: reader\n    ${key.full}: 1\n`);
    expect(message).not.toContain(key.full);
    expect(message).toMatch(
      new RegExp(
        `^accounts\\[0\\]\\.\\(a field name of ${key.full.length} characters\\): unknown field`,
      ),
    );
  });

  it('property: any JSON-ish input is accepted or refused with a path-naming bad_request, nothing else', () => {
    const jsonish = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.constantFrom(
          null,
          true,
          false,
          0,
          -1,
          1.5,
          1798761600,
          2 ** 60,
          '',
          HASH,
          'reader',
          'AbCdEf123456',
        ),
        fc.string(),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(
          fc.oneof(
            fc.constantFrom(
              'accounts',
              'name',
              'role',
              'keys',
              'id',
              'hash',
              'scopes',
              'expires_at',
              'disabled',
              'description',
              '__proto__',
              'constructor',
              'toString',
            ),
            fc.string(),
          ),
          tie('value'),
          { maxKeys: 5 },
        ),
      ),
    }));
    const shaped = fc.record({
      accounts: fc.array(
        fc.record(
          {
            name: fc.oneof(fc.constantFrom('a', 'ci', '__proto__'), fc.string()),
            role: fc.constantFrom('reader', 'admin', 'owner', 'constructor', '__proto__'),
            disabled: fc.oneof(fc.boolean(), jsonish.value),
            keys: fc.array(
              fc.record(
                {
                  id: fc.oneof(fc.constantFrom('AbCdEf123456', 'ZZZZZZZZZZZZ'), fc.string()),
                  hash: fc.oneof(fc.constant(HASH), fc.string(), jsonish.value),
                  expires_at: jsonish.value,
                  scopes: fc.oneof(fc.constantFrom(['read'], ['admin'], [], null), jsonish.value),
                },
                { requiredKeys: ['id', 'hash'] },
              ),
              { maxLength: 3 },
            ),
          },
          { requiredKeys: ['name', 'role'] },
        ),
        { maxLength: 3 },
      ),
    });
    const PATH =
      /^(\(file\)|accounts)(\[\d+\]|\.[^:\s]+|\.\(a field name of \d+ characters\))*: \S/;
    fc.assert(
      fc.property(fc.oneof(jsonish.value, shaped), (input) => {
        try {
          const accounts = validateAccounts(input, CONTEXT);
          expect(Array.isArray(accounts)).toBe(true);
        } catch (err) {
          if (!(err instanceof KeygateError) || err.code !== 'bad_request') throw err;
          expect(err.message).toMatch(PATH);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('property: arbitrary text as a file is accepted or refused with a path-naming bad_request', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (source) => {
        try {
          parseAccountsFile(source, CONTEXT);
        } catch (err) {
          if (!(err instanceof KeygateError) || err.code !== 'bad_request') throw err;
          expect(err.message).toMatch(/^(\(file\)|accounts|line \d+, column \d+)[^:]*: \S/);
        }
      }),
      { numRuns: 500 },
    );
  });
});
