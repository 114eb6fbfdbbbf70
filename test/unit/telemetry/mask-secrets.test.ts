import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateKey } from '../../../src/keys/key-format.js';
import { createLogger, maskKeys, scrubForLog } from '../../../src/telemetry/logger.js';
import { hasSecretRun, maskSecretRuns } from '../../../src/telemetry/mask-secrets.js';
import { registerIssuedKey, secretHalf } from '../../helpers/captured-logs.js';
import { LogSink } from '../../helpers/log-sink.js';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Percent-encodes every character of `text` (upper- or lower-case hex). */
function encodeAll(text: string, lower = false): string {
  return [...text].map((c) => pct(c, lower)).join('');
}

function pct(c: string, lower: boolean): string {
  const hex = c.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${lower ? hex : hex.toUpperCase()}`;
}

/**
 * The test's own lenient decoder (not keygate's), repeated until stable: `%XX`, IIS-style
 * `%uXXXX` and JSON/JS `\uXXXX` escapes all become the character they stand for.
 */
function decodeFully(text: string): string {
  let current = text;
  for (let i = 0; i < 10; i++) {
    const next = current.replace(/(?:%|\\)u([0-9A-Fa-f]{4})|%([0-9A-Fa-f]{2})/g, (_, u, h) =>
      String.fromCharCode(Number.parseInt((u ?? h) as string, 16)),
    );
    if (next === current) break;
    current = next;
  }
  return current;
}

function expectMasked(out: string, key: string) {
  const secret = secretHalf(key);
  expect(out.includes(key), out).toBe(false);
  expect(out.includes(secret), out).toBe(false);
  const decoded = decodeFully(out);
  expect(decoded.includes(key), decoded).toBe(false);
  expect(decoded.includes(secret), decoded).toBe(false);
}

describe('masking: the named misses', () => {
  const key = generateKey('kg').full;
  registerIssuedKey(key);
  const cases: Array<[string, string]> = [
    ['a word character and "_" before the key (a_<key>)', `a_${key}`],
    ['a word character after the key (<key>x)', `${key}x`],
    ['both, inside a path segment', `/model/x${key}y/z`],
    ['the separators percent-encoded (kg%5F…)', key.replaceAll('_', '%5F')],
    ['lower-case hex (kg%5f…)', key.replaceAll('_', '%5f')],
    ['every character encoded', encodeAll(key)],
    ['every character encoded, lower-case hex', encodeAll(key, true)],
    ['double-encoded separators (kg%255F…)', key.replaceAll('_', '%255F')],
    ['every character double-encoded', encodeAll(key).replaceAll('%', '%25')],
    ['IIS-style %u escapes', [...key].map((c) => `%u00${c.charCodeAt(0).toString(16)}`).join('')],
    [
      'a stray "%" before encoded hex digits (%%34%31…)',
      [...key].map((c) => `%${encodeAll(c.charCodeAt(0).toString(16))}`).join(''),
    ],
    ['JSON \\u escapes', [...key].map((c) => `\\u00${c.charCodeAt(0).toString(16)}`).join('')],
  ];

  it.each(cases)('maskKeys masks %s', (_name, text) => {
    expectMasked(maskKeys(`{"path":"/model/${text}/x"}`), key);
  });

  it.each(cases)('scrubForLog masks %s, even within the length cap', (_name, text) => {
    const scrubbed = scrubForLog(`/model/${text}`);
    expectMasked(scrubbed, key);
    expect(scrubbed).toContain('[REDACTED]');
  });

  it('keeps the public prefix and id readable when the key is written plainly', () => {
    expect(maskKeys(`a_${key}x`)).toBe(`a_${key.slice(0, 16)}[REDACTED]`);
  });

  it('leaves ordinary log text alone: UUIDs, 32-hex trace ids, key ids, short runs', () => {
    const line = JSON.stringify({
      request_id: '3f0e4c1a-8d2b-4e7f-9a6c-1b2d3e4f5a6b',
      trace: '4bf92f3577b34da6a3ce929d0e0e4736',
      key_id: 'AbCdEf123456',
      path: `/model/allocation/${'a'.repeat(42)}`,
      msg: 'request',
    });
    expect(maskKeys(line)).toBe(line);
    expect(hasSecretRun(line)).toBe(false);
    expect(hasSecretRun('a'.repeat(43))).toBe(true);
    expect(maskSecretRuns('a'.repeat(43))).toBe('[REDACTED]');
  });

  it('a key in any field of a real pino line is masked (message, nested field, error)', async () => {
    const sink = new LogSink();
    const logger = createLogger('info', sink);
    logger.info({ deep: { note: `x${key}y` } }, `path /a_${key}`);
    logger.error(new Error(`failed for ${encodeAll(key)}`), 'error');
    logger.info({ q: `"${key}"\\${key}` }, 'quotes and backslashes around the key');
    await new Promise<void>((r) => logger.flush(() => r()));
    expect(sink.raw).toHaveLength(3);
    for (const line of sink.raw) expectMasked(line, key);
  });
});

// ---- properties ----------------------------------------------------------------------------

const base62 = (length: number) =>
  fc.string({ unit: fc.constantFrom(...BASE62), minLength: length, maxLength: length });

/** A key of any prefix (shape only: masking must not depend on the checksum or prefix). */
const anyKey = fc
  .tuple(
    fc.string({
      unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz'),
      minLength: 1,
      maxLength: 1,
    }),
    fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'), maxLength: 15 }),
    base62(12),
    base62(49),
  )
  .map(([first, rest, id, secret]) => `${first}${rest}_${id}_${secret}`);

/** Surroundings: arbitrary text, word characters, "_" and "%", unicode, escapes. */
const surrounding = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.constantFrom(...`${BASE62}_%-./\\"`) }),
  fc.string({
    unit: fc.constantFrom('_', '%', 'a', 'Z', '9', '%2', '%25', '\\u', 'é', '日', '\u{1F600}'),
  }),
);

/** The key written raw, with a random subset of characters encoded, once or twice. */
const encodedKey = anyKey.chain((key) =>
  fc
    .tuple(
      fc.array(fc.integer({ min: 0, max: 2 }), { minLength: key.length, maxLength: key.length }),
      fc.boolean(),
    )
    .map(([layers, lower]) => {
      const text = [...key]
        .map((c, i) => {
          const depth = layers[i] ?? 0;
          if (depth === 0) return c;
          const once = pct(c, lower);
          return depth === 1 ? once : once.replace('%', '%25');
        })
        .join('');
      return { key, text };
    }),
);

describe('masking: properties', () => {
  it('any key, raw or encoded, in any surroundings, leaves neither itself nor its secret half', () => {
    fc.assert(
      fc.property(surrounding, encodedKey, surrounding, (before, { key, text }, after) => {
        const line = `${before}${text}${after}`;
        expectMasked(maskKeys(line), key);
        expectMasked(scrubForLog(line), key);
        // And as pino would serialise it into a line.
        expectMasked(maskKeys(JSON.stringify({ path: line })), key);
      }),
      { numRuns: 500 },
    );
  });

  it('scrubForLog never lets a clipped key through, wherever the cap falls', () => {
    fc.assert(
      fc.property(
        surrounding,
        encodedKey,
        fc.integer({ min: 0, max: 600 }),
        (before, { key, text }, max) => {
          expectMasked(scrubForLog(`${before}${text}`, max), key);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is idempotent, and text without a long run passes unchanged', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const once = maskSecretRuns(text);
        expect(maskSecretRuns(once)).toBe(once);
        if (!hasSecretRun(text)) expect(once).toBe(text);
        expect(hasSecretRun(once)).toBe(false);
      }),
    );
  });
});

describe('masking: the skip-ahead scan matches the plain definition', () => {
  // The definition, as a regex: every run of 43 or more base62/`%`/`\` characters.
  const reference = (text: string) => text.replace(/[0-9A-Za-z%\\]{43,}/g, '[REDACTED]');
  const text = fc.oneof(
    fc.string({
      unit: fc.constantFrom('a', 'Z', '0', '%', '\\', '_', '-', '"', ' ', 'é'),
      maxLength: 300,
    }),
    fc.string({ unit: 'binary', maxLength: 120 }),
    fc
      .array(
        fc.tuple(
          fc.integer({ min: 0, max: 90 }),
          fc.constantFrom('_', '"', '/', '\u00ff', '\u2028'),
        ),
      )
      .map((parts) => parts.map(([len, sep]) => `${'x'.repeat(len)}${sep}`).join('')),
  );

  it('maskSecretRuns and hasSecretRun agree with the regex for runs of every length and place', () => {
    fc.assert(
      fc.property(text, (t) => {
        expect(maskSecretRuns(t)).toBe(reference(t));
        expect(hasSecretRun(t)).toBe(/[0-9A-Za-z%\\]{43,}/.test(t));
      }),
      { numRuns: 2000 },
    );
    for (let len = 0; len < 100; len++) {
      for (const pad of ['', '_', '__', `${'y'.repeat(41)}_`]) {
        const t = `${pad}${'k'.repeat(len)}${pad}`;
        expect(maskSecretRuns(t)).toBe(reference(t));
      }
    }
  });
});

describe('masking keeps JSON well-formed', () => {
  // `\` is a run character: a run may end in the backslash of an escape whose second half is
  // not (`\"`). Whatever the string, its JSON form masked must still parse, and hold no run of
  // 43 or more (checked with a regex, not the scan under test).
  const tricky = fc.oneof(
    fc.string({
      unit: fc.constantFrom('A', '9', '%', '\\', '"', '}', ',', ' ', '\n'),
      maxLength: 160,
    }),
    fc
      .tuple(fc.integer({ min: 38, max: 48 }), fc.constantFrom('"', '\\"', '\\\\"', '"}'))
      .map(([n, tail]) => 'A'.repeat(n) + tail),
  );

  it('JSON.parse(maskSecretRuns(JSON.stringify(s))) never throws and leaves no long run', () => {
    fc.assert(
      fc.property(tricky, (s) => {
        const masked = maskSecretRuns(JSON.stringify({ v: s }));
        expect(() => JSON.parse(masked)).not.toThrow();
        expect(masked).not.toMatch(/[0-9A-Za-z%\\]{43,}/);
      }),
      { numRuns: 3000 },
    );
  });

  it('keeps the escaping backslash of a quote that follows a masked run', () => {
    const json = JSON.stringify({ path: `/${'A'.repeat(42)}"},"x":1` });
    expect(JSON.parse(maskSecretRuns(json))).toEqual({ path: '/[REDACTED]"},"x":1' });
  });
});
