import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { extractCredential } from '../../../src/credentials/extract.js';
import { KeygateError } from '../../../src/errors.js';

// Property tests for the step that turns client headers into the key to verify. Every generated
// value carries a marker naming the header it was put in, so the property can tell which header
// a returned key came from: it must be the one credential header, or nothing at all.

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Random upper/lower case of every letter. */
const anyCase = (name: string) =>
  fc
    .array(fc.boolean(), { minLength: name.length, maxLength: name.length })
    .map((flags) =>
      [...name].map((c, i) => (flags[i] ? c.toUpperCase() : c.toLowerCase())).join(''),
    );

const CREDENTIAL = new Set(['x-api-key', 'authorization']);
const OTHER_NAMES = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '0',
  '1',
  'X-API-KEY-HINT',
  'X-API-KEYS',
  'XAPIKEY',
  'API-KEY',
  'Authorization-Info',
  'Proxy-Authorization',
  'WWW-Authenticate',
  'Authorisation',
  'X-Forwarded-For',
  'Cookie',
];
/** Names that are not credential headers in any spelling. */
const otherName = fc.oneof(
  fc.constantFrom(...OTHER_NAMES),
  fc
    .stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/) // any RFC 9110 token
    .filter((n) => !['x-api-key', 'authorization'].includes(n.toLowerCase().replaceAll('_', '-'))),
);
const name = fc.oneof(
  { weight: 2, arbitrary: anyCase('x-api-key') },
  { weight: 2, arbitrary: anyCase('authorization') },
  { weight: 1, arbitrary: fc.constantFrom('x_api_key', 'x-api_key', 'x_api-key').chain(anyCase) },
  { weight: 6, arbitrary: otherName },
);

const ws = fc.constantFrom('', ' ', '  ', '\t', ' \t ');
/** A key-like string carrying the marker of header `i`. */
const keyFor = (i: number) => fc.stringMatching(/^[A-Za-z0-9_]{0,8}$/).map((s) => `kg_${s}«h${i}»`);
const valueFor = (i: number): fc.Arbitrary<string> =>
  fc.oneof(
    fc.tuple(ws, keyFor(i), ws).map(([a, k, b]) => a + k + b),
    fc
      .tuple(ws, anyCase('bearer'), ws, keyFor(i), ws)
      .map(([a, s, m, k, b]) => `${a}${s}${m}${k}${b}`),
    fc
      .tuple(
        anyCase('basic'),
        keyFor(i),
        fc.string({ unit: 'binary', maxLength: 10 }),
        fc.boolean(),
      )
      .map(([s, k, pw, colon]) => `${s} ${b64(colon ? `${k}:${pw}` : k)}`),
    fc.constantFrom('', ' ', 'Bearer', 'Bearer ', 'Basic', 'Basic ', 'Basic !!!', 'Digest x'),
    fc.string({ maxLength: 16 }),
    keyFor(i).map((k) => `Token ${k}`),
  );

const headers = fc
  .array(name, { maxLength: 6 })
  .chain((names) =>
    fc
      .tuple(...names.map((_n, i) => valueFor(i)))
      .map((values) => names.flatMap((n, i) => [n, values[i] as string])),
  );

/** Which headers carry a credential, as the documented contract defines them. */
function credentialIndexes(raw: readonly string[]): { exact: number[]; underscored: number } {
  const exact: number[] = [];
  let underscored = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = (raw[i] as string).toLowerCase();
    if (CREDENTIAL.has(lower)) exact.push(i / 2);
    else if (lower.replaceAll('_', '-') === 'x-api-key') underscored++;
  }
  return { exact, underscored };
}

describe('extractCredential properties', { timeout: 60_000 }, () => {
  it('returns one key from the one credential header, or a documented refusal', () => {
    fc.assert(
      fc.property(headers, (raw) => {
        const { exact, underscored } = credentialIndexes(raw);
        let result: ReturnType<typeof extractCredential>;
        try {
          result = extractCredential(raw);
        } catch (err) {
          // Never another kind of throw, never another code.
          expect(err).toBeInstanceOf(KeygateError);
          const code = (err as KeygateError).code;
          if (underscored > 0 || exact.length > 1) expect(code).toBe('ambiguous_credentials');
          else expect(code).toBe('missing_credentials');
          return;
        }
        expect(underscored).toBe(0);
        expect(exact).toHaveLength(1);
        const index = exact[0] as number;
        const headerName = (raw[index * 2] as string).toLowerCase();
        const value = raw[index * 2 + 1] as string;
        expect(result.key).not.toBe('');
        expect(result.key).toBe(result.key.trim());
        // The key carries no other header's marker.
        for (const m of result.key.matchAll(/«h(\d+)»/g)) expect(Number(m[1])).toBe(index);
        if (headerName === 'x-api-key') {
          expect(result).toEqual({ source: 'x-api-key', key: value.trim() });
        } else if (result.source === 'bearer') {
          expect(value.trim().slice(0, 7).toLowerCase()).toBe('bearer ');
          expect(result.key).toBe(value.trim().slice(7).trim());
        } else {
          expect(result.source).toBe('basic');
          expect(value.trim().slice(0, 6).toLowerCase()).toBe('basic ');
          const decoded = Buffer.from(value.trim().slice(6).trim(), 'base64').toString('utf8');
          expect(result.key).toBe((decoded.split(':')[0] as string).trim());
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("with one credential header among any others, the key is that header's", () => {
    const others = fc.array(otherName, { maxLength: 6 });
    const credential = fc.oneof(anyCase('x-api-key'), anyCase('authorization'));
    const raw = fc.tuple(others, credential, fc.nat()).chain(([names, cred, at]) => {
      const all = [...names];
      all.splice(at % (names.length + 1), 0, cred);
      return fc.tuple(...all.map((_n, i) => valueFor(i))).map((values) => ({
        raw: all.flatMap((n, i) => [n, values[i] as string]),
        at: at % (names.length + 1),
      }));
    });
    fc.assert(
      fc.property(raw, ({ raw, at }) => {
        try {
          const { key } = extractCredential(raw);
          for (const m of key.matchAll(/«h(\d+)»/g)) expect(Number(m[1])).toBe(at);
        } catch (err) {
          expect(err).toBeInstanceOf(KeygateError);
          expect((err as KeygateError).code).toBe('missing_credentials');
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('Basic: the key is the user name whatever the password', () => {
    const user = fc.stringMatching(/^kg_[A-Za-z0-9]{1,60}$/);
    fc.assert(
      fc.property(
        user,
        fc.string({ unit: 'binary', maxLength: 40 }),
        anyCase('basic'),
        (k, pw, s) => {
          expect(extractCredential(['Authorization', `${s} ${b64(`${k}:${pw}`)}`])).toEqual({
            source: 'basic',
            key: k,
          });
        },
      ),
    );
  });

  it('Bearer: spaces around the token are ignored; any other separator is no Bearer at all', () => {
    const token = fc.stringMatching(/^kg_[A-Za-z0-9]{1,60}$/);
    const spaces = fc.stringMatching(/^ {1,4}$/);
    fc.assert(
      fc.property(token, spaces, ws, ws, (k, sp, lead, tail) => {
        expect(extractCredential(['authorization', `${lead}Bearer${sp}${k}${tail}`])).toEqual({
          source: 'bearer',
          key: k,
        });
      }),
    );
    // A tab (or any non-space) between scheme and token leaves no "Bearer" scheme: refused,
    // not read as a key "Bearer\tkg_..." nor as the token.
    for (const sep of ['\t', '\u00a0', '\u3000', ':', '=']) {
      expect(() => extractCredential(['Authorization', `Bearer${sep}kg_abc`])).toThrow(
        expect.objectContaining({ code: 'missing_credentials' }),
      );
    }
  });
});
