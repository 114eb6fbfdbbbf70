import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { authzAccelExpires, authzCacheControl } from '../../../src/authz/authz-target.js';
import {
  isAuthzUrl,
  parseOriginalRequest,
  refuseKeysInOriginalUrl,
  targetOfAbsoluteUrl,
} from '../../../src/authz/original-request.js';
import { KeygateError } from '../../../src/errors.js';
import { generateKey } from '../../../src/keys/key-format.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof KeygateError) return err.code;
    throw err;
  }
}

const parse = (headers: string[], url = '/_keygate/authz', method = 'GET') =>
  parseOriginalRequest(method, url, headers);

/** Every spelling a lenient server folds to the same header name: odd case, "_" for "-". */
const spelling = (name: string): fc.Arbitrary<string> =>
  fc
    .tuple(
      fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }),
      fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }),
    )
    .map(([upper, underscore]) =>
      [...name]
        .map((c, i) => {
          const ch = c === '-' && underscore[i] ? '_' : c;
          return upper[i] ? ch.toUpperCase() : ch.toLowerCase();
        })
        .join(''),
    );

const target = fc.oneof(
  fc.constantFrom(
    '/model/assets',
    '/model/allocation/compute?window=1d',
    '/model/../etl/x',
    '/model/%2e%2e/etl',
    '/model/a%0d%0aX-Injected:%201',
    'http://evil.example/model/assets',
    '//evil.example/model',
    '',
    '/__proto__',
    '/constructor?__proto__=1',
  ),
  fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)),
);
const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'get', 'Get', 'PATCH');

describe('the three forms', () => {
  it('Envoy: the path after the prefix, the request own method', () => {
    expect(parse([], '/_keygate/authz/model/assets?x=1', 'POST')).toEqual({
      form: 'envoy',
      method: 'POST',
      target: '/model/assets?x=1',
    });
    expect(parse([], '/_keygate/authz/', 'GET').target).toBe('/');
  });

  it('nginx: X-Original-URI + X-Original-Method', () => {
    expect(parse(['X-Original-URI', '/model/assets?a=b', 'X-Original-Method', 'GET'])).toEqual({
      form: 'nginx',
      method: 'GET',
      target: '/model/assets?a=b',
    });
  });

  it("ingress-nginx: X-Original-URL's path and query, raw (no dot-segment resolution)", () => {
    const h = [
      'X-Original-URL',
      'https://Host.example:8443/model/../etl?q=1',
      'X-Original-Method',
      'GET',
    ];
    expect(parse(h).target).toBe('/model/../etl?q=1');
    expect(targetOfAbsoluteUrl('http://h')).toBe('/');
    expect(targetOfAbsoluteUrl('http://h?x=1')).toBe('/?x=1');
    expect(codeOf(() => targetOfAbsoluteUrl('/model/assets'))).toBe('invalid_original_request');
    expect(codeOf(() => targetOfAbsoluteUrl('ftp://h/x'))).toBe('invalid_original_request');
    expect(codeOf(() => targetOfAbsoluteUrl('http:///x'))).toBe('invalid_original_request');
  });

  it('ingress-nginx sends X-Original-URI and X-Original-URL together: fine when they agree', () => {
    const h = [
      'X-Original-URI',
      '/model/assets?x=1',
      'X-Original-URL',
      'http://h/model/assets?x=1',
      'X-Original-Method',
      'GET',
    ];
    expect(parse(h).target).toBe('/model/assets?x=1');
    h[3] = 'http://h/model/etl/x?x=1';
    expect(codeOf(() => parse(h))).toBe('conflicting_original_request');
  });

  it('Traefik/Caddy: X-Forwarded-Uri + X-Forwarded-Method', () => {
    expect(parse(['x-forwarded-uri', '/model/assets', 'x-forwarded-method', 'DELETE'])).toEqual({
      form: 'forwarded',
      method: 'DELETE',
      target: '/model/assets',
    });
  });

  it('none, or half a form, is invalid_original_request (no method is guessed)', () => {
    expect(codeOf(() => parse([]))).toBe('invalid_original_request');
    expect(codeOf(() => parse([], '/_keygate/authz?/model/assets'))).toBe(
      'invalid_original_request',
    );
    expect(codeOf(() => parse(['X-Original-URI', '/model/assets']))).toBe(
      'invalid_original_request',
    );
    expect(codeOf(() => parse(['X-Original-Method', 'GET']))).toBe('invalid_original_request');
    expect(codeOf(() => parse(['X-Forwarded-Uri', '/model/assets']))).toBe(
      'invalid_original_request',
    );
    expect(codeOf(() => parse(['X-Forwarded-Method', 'GET']))).toBe('invalid_original_request');
    // A half form beside a whole one is still refused: the misconfiguration is named.
    expect(codeOf(() => parse(['X-Forwarded-Method', 'GET'], '/_keygate/authz/model/assets'))).toBe(
      'invalid_original_request',
    );
  });

  it('methods are upper-case tokens only', () => {
    for (const m of ['get', 'Get', 'G ET', '', 'GET\t', 'X'.repeat(17)]) {
      expect(codeOf(() => parse(['X-Original-URI', '/a', 'X-Original-Method', m]))).toBe(
        'invalid_original_request',
      );
    }
  });

  it('names that are not one of the five headers are ignored, __proto__ and constructor too', () => {
    const h = [
      '__proto__',
      '/model/etl',
      'constructor',
      'POST',
      'X-Original-URI',
      '/model/assets',
      'X-Original-Method',
      'GET',
      'toString',
      'x',
    ];
    expect(parse(h)).toEqual({ form: 'nginx', method: 'GET', target: '/model/assets' });
  });
});

describe('conflicts (property)', () => {
  it('any two forms that differ in method or target → conflicting; equal → the first form', () => {
    fc.assert(
      fc.property(
        fc.record({ m1: method, t1: target, m2: method, t2: target }),
        fc.constantFrom('envoy+nginx', 'envoy+forwarded', 'nginx+forwarded'),
        spelling('x-original-uri'),
        spelling('x-original-method'),
        spelling('x-forwarded-uri'),
        spelling('x-forwarded-method'),
        ({ m1, t1, m2, t2 }, pair, ouri, ometh, furi, fmeth) => {
          const headers: string[] = [];
          let url = '/_keygate/authz';
          let envoyMethod = 'GET';
          const [a, b] = pair.split('+') as [string, string];
          const put = (form: string, m: string, t: string) => {
            if (form === 'envoy') {
              url += t;
              envoyMethod = m;
            } else if (form === 'nginx') headers.push(ouri, t, ometh, m);
            else headers.push(furi, t, fmeth, m);
          };
          put(a, m1, t1);
          put(b, m2, t2);
          const envoyOk = (t: string) => t.startsWith('/');
          const code = codeOf(() => parseOriginalRequest(envoyMethod, url, headers));
          // Envoy's form exists only when the suffix starts with "/": another suffix is no form.
          const formsPresent = [a, b].filter((f, i) => f !== 'envoy' || envoyOk(i === 0 ? t1 : t2));
          const tokens = /^[A-Z]{1,16}$/;
          if (formsPresent.length < 2) return; // covered by the example tests
          if (a === 'envoy' && !envoyOk(t1)) return;
          const sameRequest = m1 === m2 && t1 === t2;
          if (!tokens.test(m1) || !tokens.test(m2)) {
            expect(
              code === 'invalid_original_request' || code === 'conflicting_original_request',
            ).toBe(true);
          } else if (sameRequest) {
            expect(code).toBeUndefined();
            expect(parseOriginalRequest(envoyMethod, url, headers).form).toBe(a);
          } else {
            expect(code).toBe('conflicting_original_request');
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('any header of a form given twice (any spelling) → conflicting, even with equal values', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(
          'x-original-uri',
          'x-original-url',
          'x-original-method',
          'x-forwarded-uri',
          'x-forwarded-method',
        ),
        fc.boolean(),
        (name, sameValue) =>
          fc.assert(
            fc.property(spelling(name), spelling(name), (s1, s2) => {
              const value = name.endsWith('method')
                ? 'GET'
                : name.endsWith('url')
                  ? 'http://h/a'
                  : '/a';
              const headers = [s1, value, s2, sameValue ? value : `${value}x`];
              expect(codeOf(() => parse(headers, '/_keygate/authz/a'))).toBe(
                'conflicting_original_request',
              );
            }),
            { numRuns: 20 },
          ),
      ),
      { numRuns: 30 },
    );
  });

  it('never throws anything but a KeygateError, whatever the headers (binary values, odd names)', () => {
    const name = fc.oneof(
      fc.constantFrom(
        'x-original-uri',
        'X_Original_URL',
        'x-original-method',
        'X-FORWARDED-URI',
        'x_forwarded_method',
        '__proto__',
        'constructor',
        '0',
        'hasOwnProperty',
      ),
      fc.string({ maxLength: 20 }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(name, fc.string({ unit: 'binary', maxLength: 40 })), { maxLength: 8 }),
        fc.string({ maxLength: 30 }),
        method,
        (pairs, suffix, m) => {
          const url = `/_keygate/authz${suffix}`;
          try {
            const r = parseOriginalRequest(m, url, pairs.flat());
            expect(['envoy', 'nginx', 'forwarded']).toContain(r.form);
            expect(r.method).toMatch(/^[A-Z]{1,16}$/);
          } catch (err) {
            expect(err).toBeInstanceOf(KeygateError);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('the endpoint and the key check', () => {
  it('isAuthzUrl: the endpoint, below it, or with a query; no look-alikes', () => {
    for (const u of [
      '/_keygate/authz',
      '/_keygate/authz/',
      '/_keygate/authz/x',
      '/_keygate/authz?x',
    ])
      expect(isAuthzUrl(u)).toBe(true);
    for (const u of [
      '/_keygate/authzx',
      '/_keygate/Authz',
      '/_KEYGATE/authz',
      '/_keygate/v1/authz',
      '/_keygate',
      '/_keygate/%61uthz',
    ])
      expect(isAuthzUrl(u)).toBe(false);
  });

  it('a key in any URL-carrying header, raw or percent-encoded, is credential_in_url', () => {
    const key = generateKey('kg').full;
    const encoded = key.replace('_', '%5F');
    for (const name of ['X-Original-URI', 'x_original_url', 'X-Forwarded-Uri']) {
      for (const v of [
        `/model/assets?k=${key}`,
        `/model/${encoded}`,
        `http://h/m?${encodeURIComponent(encoded)}`,
      ]) {
        expect(codeOf(() => refuseKeysInOriginalUrl([name, v], 'kg'))).toBe('credential_in_url');
      }
    }
    expect(
      codeOf(() => refuseKeysInOriginalUrl(['X-Original-URI', '/model/assets?k=kg_short'], 'kg')),
    ).toBeUndefined();
  });

  it('Cache-Control: no-store at 0 and below one second, else private max-age in whole seconds', () => {
    expect(authzCacheControl(0)).toBe('no-store');
    expect(authzCacheControl(999)).toBe('no-store');
    expect(authzCacheControl(1000)).toBe('private, max-age=1');
    expect(authzCacheControl(30_500)).toBe('private, max-age=30');
  });

  it('X-Accel-Expires (the nginx caching snippet goes by it): absent below one second, else whole seconds', () => {
    expect(authzAccelExpires(0)).toBeUndefined();
    expect(authzAccelExpires(999)).toBeUndefined();
    expect(authzAccelExpires(1000)).toBe('1');
    expect(authzAccelExpires(30_500)).toBe('30');
  });
});
