import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import { normaliseTarget } from '../../../src/policy/normalise-path.js';

// Property tests for the one function that turns a client's request target into the path that
// is authorised and forwarded. The generator mixes what an attacker would: dot segments raw and
// encoded, encoded slashes and backslashes, "//", ";", random escapes in either case, raw and
// encoded Unicode (valid, overlong, truncated), and query strings full of the same.

const UNRESERVED = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~';
const hexCase = (hex: string) =>
  fc.boolean().map((upper) => (upper ? hex.toUpperCase() : hex.toLowerCase()));
const escapeOf = (byte: number) => hexCase(`%${byte.toString(16).padStart(2, '0')}`);
const utf8Escapes = (text: string) =>
  fc
    .tuple(...[...Buffer.from(text, 'utf8')].map((b) => escapeOf(b)))
    .map((parts) => parts.join(''));

const piece: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...UNRESERVED.split('')),
  fc.constantFrom(...UNRESERVED.split('')).chain((c) => escapeOf(c.charCodeAt(0))),
  fc.constantFrom('.', '..', '%2e', '%2E', '.%2e', '%2e%2E', '%2f', '%2F', '%5c', '%5C', '\\'),
  fc.constantFrom(';', ';jsessionid=x', '..;', '%3b', '%00', '%0a', '%7f', '%25', '%2525'),
  fc.constantFrom('#', '%23', '%3f', '?', ' ', '%20', '+', '\t', ':', '@', '!', "'", '*'),
  fc.integer({ min: 0, max: 255 }).chain(escapeOf), // any single byte, encoded
  fc.string({ unit: 'binary', maxLength: 3 }), // raw Unicode, including lone surrogates
  fc.string({ unit: 'grapheme', maxLength: 3 }).chain(utf8Escapes), // valid UTF-8, encoded
  fc.constantFrom(
    '%c0%ae', // overlong "."
    '%C0%AF', // overlong "/"
    '%e0%80%ae', // 3-byte overlong "."
    '%ED%A0%80', // surrogate
    '%F4%90%80%80', // above U+10FFFF
    '%C3', // truncated
    '%EF%BC%8F', // fullwidth solidus
    '%E2%80%A4', // one-dot leader
    '%C3%A9', // "é", fine
  ),
);
// Mostly acceptable pieces, so that enough targets get past the refusals to test the result.
const benign: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...UNRESERVED.split('')),
  fc.constantFrom(...UNRESERVED.split('')).chain((c) => escapeOf(c.charCodeAt(0))),
  fc.constantFrom('%2e', '%20', '+', ':', '@', '!', '%C3%A9', '%e2%82%ac', '%F0%9F%98%80'),
  fc.string({ unit: 'grapheme', maxLength: 2 }).chain(utf8Escapes),
);
const segment = fc.array(piece, { maxLength: 5 }).map((p) => p.join(''));
const benignSegment = fc.array(benign, { minLength: 1, maxLength: 5 }).map((p) => p.join(''));
const path = fc.oneof(
  fc.array(segment, { minLength: 1, maxLength: 6 }).map((s) => `/${s.join('/')}`),
  fc.array(benignSegment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join('/')}`),
  fc.string({ maxLength: 20 }).map((s) => `/${s}`),
  fc.constantFrom('/', '//', '/model', 'model', '', '*', 'http://x/model/a'),
);
const query = fc.oneof(
  fc.constant(''),
  fc.array(piece, { maxLength: 8 }).map((p) => `?${p.join('')}`),
  fc.string({ maxLength: 12 }).map((s) => `?${s}`),
);

/** Percent-decodes once into bytes (as a latin1 string), as an origin server would. */
function decodeOnce(text: string): string {
  return text.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );
}

/** The input's path part: everything before the first "?" (the generator may put one anywhere). */
function pathPart(target: string): string {
  const at = target.indexOf('?');
  return at === -1 ? target : target.slice(0, at);
}

/** Normalises, returning undefined for a refusal; any other throw fails the property. */
function attempt(target: string): ReturnType<typeof normaliseTarget> | undefined {
  try {
    return normaliseTarget(target);
  } catch (err) {
    if (err instanceof KeygateError && err.code === 'invalid_path') return undefined;
    throw err;
  }
}

const RUNS = { numRuns: 3000 };

describe('normaliseTarget properties', { timeout: 60_000 }, () => {
  it('refuses, or yields a path with no dot segment, no "//" and no encoded dot, slash, "%" or control', () => {
    fc.assert(
      fc.property(path, query, (p, q) => {
        const out = attempt(p + q);
        if (out === undefined) return;
        expect(out.path.startsWith('/')).toBe(true);
        const segments = out.path.split('/').slice(1);
        if (out.path !== '/') {
          for (const s of segments) expect(['', '.', '..']).not.toContain(s);
        }
        expect(out.path).not.toMatch(/%(2F|5C|2E|25|[01][0-9A-F]|7F)/i);
        // Only characters every server reads alike remain raw; escapes are upper-case and
        // never of an unreserved character (those are decoded, once).
        expect(out.path).toMatch(/^(?:[A-Za-z0-9\-._~!$&'()*+,=:@/]|%[0-9A-F]{2})*$/);
        for (const m of out.path.matchAll(/%([0-9A-F]{2})/g)) {
          const ch = String.fromCharCode(Number.parseInt(m[1] as string, 16));
          expect(/[A-Za-z0-9\-._~]/.test(ch)).toBe(false);
        }
      }),
      RUNS,
    );
  });

  it('keeps the meaning: decoding the result once equals decoding the input path once', () => {
    fc.assert(
      fc.property(path, query, (p, q) => {
        const out = attempt(p + q);
        if (out === undefined) return;
        expect(decodeOnce(out.path)).toBe(decodeOnce(pathPart(p + q)));
      }),
      RUNS,
    );
  });

  it('is idempotent: normalising the result again changes nothing', () => {
    fc.assert(
      fc.property(path, query, (p, q) => {
        const out = attempt(p + q);
        if (out === undefined) return;
        expect(normaliseTarget(out.path + out.query)).toEqual(out);
      }),
      RUNS,
    );
  });

  it('passes the query through byte for byte', () => {
    fc.assert(
      fc.property(path, query, (p, q) => {
        const out = attempt(p + q);
        if (out === undefined) return;
        const target = p + q;
        expect(out.query).toBe(target.slice(pathPart(target).length));
      }),
      RUNS,
    );
  });

  it('accepts only decoded bytes that are valid UTF-8 and unchanged by NFKC', () => {
    fc.assert(
      fc.property(path, query, (p, q) => {
        const out = attempt(p + q);
        if (out === undefined) return;
        const bytes = Buffer.from(decodeOnce(out.path), 'latin1');
        // An oracle independent of TextDecoder: Node's lenient decoder replaces bad bytes
        // with U+FFFD, so a round trip changes exactly the sequences that are not UTF-8.
        const text = bytes.toString('utf8');
        expect(Buffer.from(text, 'utf8').equals(bytes)).toBe(true);
        expect(text.normalize('NFKC')).toBe(text);
        expect(text).not.toMatch(/[／＼．․‥∕⁄]/u);
      }),
      RUNS,
    );
  });

  it('refuses every encoded byte sequence that is not UTF-8', () => {
    const bytes = fc.uint8Array({ minLength: 1, maxLength: 6 }).filter((b) => {
      const buf = Buffer.from(b);
      return !Buffer.from(buf.toString('utf8'), 'utf8').equals(buf);
    });
    fc.assert(
      fc.property(bytes, fc.boolean(), (b, upper) => {
        const escaped = [...b]
          .map((x) => `%${x.toString(16).padStart(2, '0')}`)
          .join('')
          .replace(/%[0-9a-f]{2}/g, (m) => (upper ? m.toUpperCase() : m));
        expect(attempt(`/model/a${escaped}b`)).toBeUndefined();
      }),
      RUNS,
    );
  });

  it('accepts encoded letters and digits of any script that NFKC leaves alone', () => {
    const word = fc
      .string({ unit: fc.constantFrom(...Array.from('aéßжλ中文ひらがな한글٣😀')), minLength: 1 })
      .filter((s) => s.normalize('NFKC') === s);
    fc.assert(
      fc.property(word, (w) => {
        const out = attempt(`/model/${encodeURIComponent(w)}`);
        expect(out).toBeDefined();
        expect(decodeURIComponent(out?.path ?? '')).toBe(`/model/${w}`);
      }),
      { numRuns: 500 },
    );
  });
});
