import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { generateKey } from '../../../src/keys/key-format.js';
import {
  type AccessEntry,
  jsonAccessLog,
  loggerAccessLog,
} from '../../../src/telemetry/access-log.js';
import { createLogger } from '../../../src/telemetry/logger.js';
import { hasSecretRun } from '../../../src/telemetry/mask-secrets.js';
import { LogSink } from '../../helpers/log-sink.js';

// Client-influenced strings: anything, including quotes, backslashes, control characters, lone
// surrogates, U+2028/2029, and base62/`%`/`\` runs long enough to be masked.
const hostile = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom('"', '\\', '\u2028', '\u2029', '\ud800', '\udfff', '\u0000\u001f', '__proto__'),
  fc.constant(generateKey('kg').full),
  fc.string({ unit: fc.constantFrom('a', 'Z', '9', '%', '\\', '"', '\n'), maxLength: 120 }),
);
const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const number = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(Number.NaN, -0, 1e21, 1e-7));
const entry: fc.Arbitrary<AccessEntry> = fc.record({
  request_id: hostile,
  method: optional(hostile),
  path: hostile,
  route: hostile,
  status: number,
  duration_ms: number,
  account: optional(hostile),
  key_id: optional(hostile),
  key_proven: fc.constantFrom(false as const, undefined),
  credential: optional(hostile),
  decision: fc.constantFrom('allow' as const, 'deny' as const, 'error' as const),
  error: optional(hostile),
  upstream_status: optional(number),
  upstream_ms: optional(number),
  remote: hostile,
});

/** Writes the entry through `make(logger)` and returns the one raw line. */
function lineOf(make: typeof jsonAccessLog, e: AccessEntry): string {
  const sink = new LogSink();
  const chunks: string[] = [];
  const logger = createLogger('info', {
    write: (s: string) => {
      chunks.push(s);
      sink.write(s);
    },
  });
  make(logger).write(e);
  expect(chunks).toHaveLength(1);
  return chunks[0] as string;
}

const LONE = /[\ud800-\udfff]/;

/** pino writes lone surrogates raw; as text (before UTF-8) they parse the same as escaped. */
const parsed = (line: string) => {
  const { time, ...rest } = JSON.parse(line) as Record<string, unknown>;
  expect(typeof time).toBe('string');
  return rest;
};

describe('access line (hand-built JSON)', () => {
  it('parses to exactly the fields, order and values pino wrote, for arbitrary strings', () => {
    fc.assert(
      fc.property(entry, (e) => {
        // The one allowed difference: pino writes a lone surrogate raw, this line escapes it
        // (`\udXXX`, six run characters), so a run next to one can be masked here and not by
        // pino — the safe side. Tested on its own below.
        fc.pre(
          Object.values(e).every(
            (v) => typeof v !== 'string' || !LONE.test(v) || !hasSecretRun(JSON.stringify(v)),
          ),
        );
        const ours = lineOf(jsonAccessLog, e);
        const pinos = lineOf(loggerAccessLog, e);
        expect(ours.endsWith('}\n')).toBe(true);
        expect(ours.indexOf('\n')).toBe(ours.length - 1); // one line, whatever the input
        const a = parsed(ours);
        const b = parsed(pinos);
        expect(a).toEqual(b);
        expect(Object.keys(a)).toEqual(Object.keys(b));
      }),
      { numRuns: 500 },
    );
  });

  it('the whole line is masked: no secret-like run reaches the stream in any field', () => {
    fc.assert(
      fc.property(entry, (e) => {
        expect(hasSecretRun(lineOf(jsonAccessLog, e))).toBe(false);
      }),
      { numRuns: 300 },
    );
    const key = generateKey('kg').full;
    const line = lineOf(jsonAccessLog, {
      request_id: key,
      method: key,
      path: `/model/${key}`,
      route: 'r',
      status: 401,
      duration_ms: 1,
      account: undefined,
      key_id: undefined,
      key_proven: undefined,
      credential: undefined,
      decision: 'deny',
      error: undefined,
      upstream_status: undefined,
      upstream_ms: undefined,
      remote: key,
    });
    expect(line).not.toContain(key.slice(16, 59));
    expect(line).toContain('[REDACTED]');
  });

  it('a lone surrogate is escaped, and counts towards a masked run (pino wrote it raw)', () => {
    const base: AccessEntry = {
      request_id: 'r',
      method: undefined,
      path: `/${'a'.repeat(40)}\ud800`,
      route: 'none',
      status: 404,
      duration_ms: 0,
      account: undefined,
      key_id: undefined,
      key_proven: undefined,
      credential: undefined,
      decision: 'deny',
      error: undefined,
      upstream_status: undefined,
      upstream_ms: undefined,
      remote: '\ud800\u2028"\\',
    };
    const line = lineOf(jsonAccessLog, base);
    expect(line).toContain('"remote":"\\ud800\u2028\\"\\\\"');
    expect(JSON.parse(line).remote).toBe('\ud800\u2028"\\');
    expect(JSON.parse(line).path).toBe('/[REDACTED]');
  });

  it('field names and order are those of the pino line today', () => {
    const line = lineOf(jsonAccessLog, {
      request_id: 'r1',
      method: 'GET',
      path: '/model/allocation',
      route: 'allocation',
      status: 200,
      duration_ms: 1.5,
      account: 'acme',
      key_id: 'AbCdEfGhIjKl',
      key_proven: false,
      credential: 'x-api-key',
      decision: 'allow',
      error: 'none',
      upstream_status: 200,
      upstream_ms: 0.75,
      remote: '127.0.0.1',
    });
    expect(Object.keys(JSON.parse(line))).toEqual([
      'level',
      'time',
      'service',
      'type',
      'request_id',
      'method',
      'path',
      'route',
      'status',
      'duration_ms',
      'account',
      'key_id',
      'key_proven',
      'credential',
      'decision',
      'error',
      'upstream_status',
      'upstream_ms',
      'remote',
      'msg',
    ]);
    expect(JSON.parse(line)).toMatchObject({ level: 'info', type: 'access', msg: 'request' });
    expect(new Date(JSON.parse(line).time).toISOString()).toBe(JSON.parse(line).time);
  });

  it('shares the logger stream in order, and follows the logger level at run time', async () => {
    const sink = new LogSink();
    const logger = createLogger('warn', sink);
    const access = jsonAccessLog(logger);
    const e = (id: string): AccessEntry => ({
      request_id: id,
      method: 'GET',
      path: '/',
      route: 'none',
      status: 404,
      duration_ms: 0,
      account: undefined,
      key_id: undefined,
      key_proven: undefined,
      credential: undefined,
      decision: 'deny',
      error: 'route_not_found',
      upstream_status: undefined,
      upstream_ms: undefined,
      remote: '::1',
    });
    access.write(e('dropped-at-warn'));
    logger.level = 'info';
    logger.info('first');
    access.write(e('second'));
    logger.warn('third');
    await new Promise<void>((r) => logger.flush(() => r()));
    expect(sink.lines.map((l) => l.request_id ?? l.msg)).toEqual(['first', 'second', 'third']);
  });
});

describe('a client cannot cut its access line short', () => {
  // A run of 42 run characters and then `"`: JSON.stringify writes `\"`, the backslash extends
  // the run to 43, and masking it once unescaped the quote, ending the path string early
  // (found in review). The path is the client's request target, so no key is needed.
  const edge = fc
    .tuple(
      fc.integer({ min: 30, max: 60 }),
      fc.constantFrom('"', '\\"', '\\\\"', '"}', '"},"x":1', '\\', '\n"'),
      fc.string({ maxLength: 8 }),
    )
    .map(([n, tail, rest]) => `/${'A'.repeat(n)}${tail}${rest}`);

  it('a path like /AAA…A"},"x":1 still gives one well-formed line with every field', () => {
    fc.assert(
      fc.property(edge, fc.constantFrom(jsonAccessLog, loggerAccessLog), (path, make) => {
        const line = lineOf(make, {
          request_id: 'r1',
          method: 'GET',
          path,
          route: 'none',
          status: 401,
          duration_ms: 1,
          account: undefined,
          key_id: undefined,
          key_proven: undefined,
          credential: undefined,
          decision: 'deny',
          error: 'missing_credentials',
          upstream_status: undefined,
          upstream_ms: undefined,
          remote: '127.0.0.1',
        });
        const fields = JSON.parse(line) as Record<string, unknown>;
        expect(fields).toMatchObject({ status: 401, decision: 'deny', remote: '127.0.0.1' });
        expect(fields).not.toHaveProperty('x');
        // Still masked: an independent check, not the masking code's own scan.
        expect(line).not.toMatch(/[0-9A-Za-z%\\]{43,}/);
      }),
      { numRuns: 500 },
    );
  });
});

describe('BatchedLineStream', () => {
  it('keeps lines in order across batches, the timer, flush and flushSync', async () => {
    const { BatchedLineStream } = await import('../../../src/telemetry/batched-stream.js');
    const written: string[] = [];
    let flushed = 0;
    const stream = new BatchedLineStream(
      { write: (c) => written.push(c), flush: (cb) => cb?.(), flushSync: () => flushed++ },
      40,
      20,
    );
    onTestFinished(() => stream.close());
    stream.write('a'.repeat(30));
    expect(written).toEqual([]); // below the batch size: held
    stream.write('b'.repeat(30)); // reaches it: one chunk
    expect(written).toEqual(['a'.repeat(30) + 'b'.repeat(30)]);
    stream.write('c');
    await new Promise((r) => setTimeout(r, 60)); // the timer releases a quiet batch
    expect(written.at(-1)).toBe('c');
    stream.write('d');
    await new Promise<void>((r) => stream.flush(() => r()));
    expect(written.at(-1)).toBe('d');
    stream.write('e');
    stream.flushSync();
    expect(written.join('')).toBe(`${'a'.repeat(30)}${'b'.repeat(30)}cde`);
    expect(flushed).toBe(1);
  });
});
