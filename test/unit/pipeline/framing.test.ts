import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import {
  checkFraming,
  type FramingInput,
  MAX_HEADER_LINES,
} from '../../../src/pipeline/framing.js';

function outcome(input: FramingInput): { hasBody: boolean } | { code: string } {
  try {
    return checkFraming(input);
  } catch (err) {
    if (!(err instanceof KeygateError)) throw err; // anything else is a bug (a 500)
    return { code: err.code };
  }
}

const raw = (...pairs: Array<[string, string]>) => pairs.flat();
const post = (...pairs: Array<[string, string]>): FramingInput => ({
  method: 'POST',
  httpVersion: '1.1',
  rawHeaders: raw(['Host', 'kg.example'], ...pairs),
});

/** A header name in random case: the parser must not care. */
const anyCase = (name: string) =>
  fc
    .array(fc.boolean(), { minLength: name.length, maxLength: name.length })
    .map((upper) => [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(''));

/** Names that collide with JavaScript object properties, numeric names, look-alikes. */
const hostileName = fc.constantFrom(
  ...Object.getOwnPropertyNames(Object.prototype),
  'constructor',
  'prototype',
  '0',
  '1',
  '4294967295',
  'host_',
  'x-host',
  'transfer_encoding',
  'content_length',
  'x-forwarded-host',
  'hosts',
);
const noise = fc.array(fc.tuple(hostileName, fc.string({ maxLength: 20 })), { maxLength: 6 });

describe('checkFraming: Host (RFC 9112 §3.2)', () => {
  it('exactly one non-empty Host passes; two or more in any case and order are refused', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(anyCase('host'), fc.string({ maxLength: 12 })), {
          minLength: 2,
          maxLength: 4,
        }),
        noise,
        (hosts, extra) => {
          const rawHeaders = [...extra, ...hosts].flat();
          expect(outcome({ method: 'GET', httpVersion: '1.1', rawHeaders })).toEqual({
            code: 'bad_request',
          });
        },
      ),
    );
  });

  it('one Host with a value passes whatever else is sent under hostile names', () => {
    fc.assert(
      fc.property(anyCase('host'), noise, (name, extra) => {
        const rawHeaders = [...extra.flat(), name, 'kg.example'];
        expect(outcome({ method: 'GET', httpVersion: '1.1', rawHeaders })).toEqual({
          hasBody: false,
        });
      }),
    );
  });

  it('an empty or blank Host, and no Host on HTTP/1.1, are refused; HTTP/1.0 needs none', () => {
    for (const value of ['', ' ', '\t']) {
      expect(outcome({ method: 'GET', httpVersion: '1.1', rawHeaders: ['Host', value] })).toEqual({
        code: 'bad_request',
      });
    }
    expect(outcome({ method: 'GET', httpVersion: '1.1', rawHeaders: [] })).toEqual({
      code: 'bad_request',
    });
    expect(outcome({ method: 'GET', httpVersion: '1.0', rawHeaders: [] })).toEqual({
      hasBody: false,
    });
  });
});

describe('checkFraming: Transfer-Encoding (RFC 9112 §6.1)', () => {
  const coding = fc.constantFrom(
    'chunked',
    'CHUNKED',
    'Chunked',
    ' chunked ',
    'gzip',
    'x-gzip',
    'deflate',
    'compress',
    'identity',
    'br',
    'chunked;x=1',
    '"chunked"',
    '',
    ' ',
  );
  const teLines = fc.array(
    fc.array(coding, { minLength: 1, maxLength: 3 }).map((cs) => cs.join(',')),
    { minLength: 1, maxLength: 3 },
  );

  it('accepted exactly when there is one line holding one plain "chunked", any case', () => {
    fc.assert(
      fc.property(teLines, anyCase('transfer-encoding'), noise, (lines, name, extra) => {
        const input = post(...extra, ...lines.map((v): [string, string] => [name, v]));
        const result = outcome(input);
        const plain = lines.length === 1 && lines[0]?.trim().toLowerCase() === 'chunked';
        if (plain) {
          expect(result).toEqual({ hasBody: true });
          return;
        }
        const codings = lines.flatMap((l) => l.split(',')).map((c) => c.trim().toLowerCase());
        const foreign = codings.some((c) => c !== '' && c !== 'chunked');
        expect(result).toEqual({ code: foreign ? 'not_implemented' : 'bad_request' });
      }),
    );
  });

  it('examples: gzip, chunked is 501; chunked, chunked is 400; HTTP/1.0 with chunked is 400', () => {
    expect(outcome(post(['Transfer-Encoding', 'gzip, chunked']))).toEqual({
      code: 'not_implemented',
    });
    expect(outcome(post(['Transfer-Encoding', 'gzip'], ['transfer-encoding', 'chunked']))).toEqual({
      code: 'not_implemented',
    });
    expect(outcome(post(['Transfer-Encoding', 'chunked, chunked']))).toEqual({
      code: 'bad_request',
    });
    expect(
      outcome({
        method: 'POST',
        httpVersion: '1.0',
        rawHeaders: ['Transfer-Encoding', 'chunked'],
      }),
    ).toEqual({ code: 'bad_request' });
  });

  it('look-alike names are not Transfer-Encoding and do not make a body', () => {
    for (const name of ['transfer_encoding', 'Transfer-Encodings', 'x-transfer-encoding', 'te']) {
      expect(outcome(post([name, 'gzip, chunked']))).toEqual({ hasBody: false });
    }
  });
});

describe('checkFraming: bodies on GET, HEAD, OPTIONS, TRACE', () => {
  const method = fc.constantFrom(
    'GET',
    'HEAD',
    'OPTIONS',
    'TRACE',
    'POST',
    'PUT',
    'PATCH',
    'DELETE',
  );
  const length = fc.oneof(fc.constant('0'), fc.nat({ max: 1_000_000 }).map(String));

  it('a body is any Transfer-Encoding or a Content-Length above 0; bodyless methods refuse it', () => {
    fc.assert(
      fc.property(method, fc.option(length), fc.boolean(), noise, (m, cl, chunked, extra) => {
        const pairs: Array<[string, string]> = [...extra];
        if (cl !== null) pairs.push(['Content-Length', cl]);
        if (chunked) pairs.push(['Transfer-Encoding', 'chunked']);
        const result = outcome({ ...post(...pairs), method: m });
        const hasBody = chunked || (cl !== null && Number(cl) > 0);
        if (hasBody && ['GET', 'HEAD', 'OPTIONS', 'TRACE'].includes(m)) {
          expect(result).toEqual({ code: 'body_not_allowed' });
        } else {
          expect(result).toEqual({ hasBody });
        }
      }),
    );
  });
});

describe('checkFraming: the number of header lines', () => {
  const lines = (n: number) => [
    'Host',
    'kg.example',
    ...Array.from({ length: n - 1 }, (_, i) => [`x-${i}`, 'v']).flat(),
  ];

  it('up to MAX_HEADER_LINES (256) lines pass; one more is refused before anything else is read', () => {
    expect(MAX_HEADER_LINES).toBe(256);
    expect(
      outcome({ method: 'GET', httpVersion: '1.1', rawHeaders: lines(MAX_HEADER_LINES) }),
    ).toEqual({
      hasBody: false,
    });
    expect(
      outcome({ method: 'GET', httpVersion: '1.1', rawHeaders: lines(MAX_HEADER_LINES + 1) }),
    ).toEqual({ code: 'too_many_headers' });
  });

  it('leaves room for keygate’s own headers below Node’s default cut-off (about 1000 lines)', () => {
    // keygate appends 8 (forwarding, request id, identity) and undici 2-3 (host, connection,
    // framing): all of them must land before a default Node upstream stops reading.
    expect(MAX_HEADER_LINES + 16).toBeLessThan(1000);
  });
});
