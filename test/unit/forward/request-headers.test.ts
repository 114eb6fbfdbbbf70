import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chooseRequestId,
  type FlatHeaders,
  type IdentityHeaderNames,
  RequestHeaderBuilder,
  trustedProxyList,
} from '../../../src/forward/request-headers.js';
import type { Principal } from '../../../src/keys/principal.js';

const IDENTITY = {
  account: 'X-Keygate-Account',
  keyId: 'X-Keygate-Key-Id',
  role: 'X-Keygate-Role',
};
const principal: Principal = {
  keyId: 'KEYID0000001',
  account: 'ci',
  role: 'reader',
  scopes: new Set(['read']),
  expiresAt: 0,
  rateLimit: undefined,
  filters: undefined,
};

function builder(
  trusted: string[] = [],
  identity: IdentityHeaderNames = IDENTITY,
  dropHeaders: string[] = [],
) {
  return new RequestHeaderBuilder(
    identity,
    trustedProxyList(trusted),
    trusted.length > 0,
    dropHeaders,
  );
}

function build(raw: string[], remote = '10.1.2.3', trusted: string[] = []): FlatHeaders {
  return builder(trusted).build({
    rawHeaders: raw,
    remoteAddress: remote,
    encrypted: false,
    requestId: 'rid',
    principal,
  });
}

function pairs(flat: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
}

/** Every value under `name` (exact, lower case: the builder lower-cases what it forwards). */
function values(flat: readonly string[], name: string): string[] {
  return pairs(flat)
    .filter(([n]) => n === name)
    .map(([, v]) => v);
}

/** The one value under `name`, or a failed assertion when there are none or several. */
function one(flat: readonly string[], name: string): string {
  const found = values(flat, name);
  expect(found, name).toHaveLength(1);
  return found[0] as string;
}

describe('RequestHeaderBuilder', () => {
  it('keeps ordinary headers, drops credentials and hop-by-hop, adds identity and forwarding', () => {
    const out = build([
      'Host',
      'kg.example',
      'Accept',
      'application/json',
      'X-API-KEY',
      'kg_secret',
      'Authorization',
      'Bearer kg_secret',
      'Cookie',
      'token=t',
      'Connection',
      'keep-alive',
      'Keep-Alive',
      'timeout=5',
      'Transfer-Encoding',
      'chunked',
      'Content-Type',
      'application/json',
      'Accept',
      'text/csv',
    ]);
    expect(pairs(out)).toEqual([
      ['accept', 'application/json'],
      ['content-type', 'application/json'],
      ['accept', 'text/csv'],
      ['x-forwarded-for', '10.1.2.3'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'kg.example'],
      ['x-real-ip', '10.1.2.3'],
      ['x-request-id', 'rid'],
      ['x-keygate-account', 'ci'],
      ['x-keygate-key-id', 'KEYID0000001'],
      ['x-keygate-role', 'reader'],
    ]);
    expect(JSON.stringify(out)).not.toContain('kg_secret');
  });

  it('drops identity headers in any case and with "_" for "-"', () => {
    const out = build([
      'x_keygate_account',
      'root',
      'X-KEYGATE-ROLE',
      'admin',
      'X_Keygate_Key_Id',
      'AAAA',
    ]);
    expect(one(out, 'x-keygate-account')).toBe('ci');
    expect(one(out, 'x-keygate-role')).toBe('reader');
    expect(one(out, 'x-keygate-key-id')).toBe('KEYID0000001');
    expect(pairs(out).filter(([n]) => n.includes('_'))).toEqual([]);
  });

  it('drops headers named in Connection, but never its own additions', () => {
    const out = build([
      'Connection',
      'X-Custom, x-keygate-account, X-Forwarded-For',
      'X-Custom',
      'v',
    ]);
    expect(values(out, 'x-custom')).toEqual([]);
    expect(one(out, 'x-keygate-account')).toBe('ci');
    expect(one(out, 'x-forwarded-for')).toBe('10.1.2.3');
  });

  it('replaces client X-Forwarded-* from an untrusted peer', () => {
    const out = build([
      'X-Forwarded-For',
      '6.6.6.6',
      'X-Forwarded-Proto',
      'https',
      'X-Forwarded-Host',
      'evil',
      'Host',
      'good',
    ]);
    expect(one(out, 'x-forwarded-for')).toBe('10.1.2.3');
    expect(one(out, 'x-forwarded-proto')).toBe('http');
    expect(one(out, 'x-forwarded-host')).toBe('good');
  });

  it('appends to X-Forwarded-For from a trusted proxy and keeps its proto and host', () => {
    const out = build(
      [
        'X-Forwarded-For',
        '203.0.113.7, 10.0.0.9',
        'X-Forwarded-Proto',
        'https',
        'X-Forwarded-Host',
        'kubecost.example',
      ],
      '10.0.0.5',
      ['10.0.0.0/8'],
    );
    expect(one(out, 'x-forwarded-for')).toBe('203.0.113.7, 10.0.0.9, 10.0.0.5');
    expect(one(out, 'x-forwarded-proto')).toBe('https');
    expect(one(out, 'x-forwarded-host')).toBe('kubecost.example');
    expect(one(out, 'x-real-ip')).toBe('203.0.113.7');
  });

  it('a trusted proxy’s chain is read from X-Forwarded-For only, not from "_" look-alikes', () => {
    const out = build(
      ['x_forwarded_for', '6.6.6.6', 'X-Forwarded-For', '203.0.113.7'],
      '10.0.0.5',
      ['10.0.0.0/8'],
    );
    expect(one(out, 'x-forwarded-for')).toBe('203.0.113.7, 10.0.0.5');
    expect(one(out, 'x-real-ip')).toBe('203.0.113.7');
  });

  it('normalises IPv4-mapped IPv6 peers', () => {
    expect(
      one(
        builder(['10.0.0.0/8']).build({
          rawHeaders: [],
          remoteAddress: '::ffff:10.0.0.5',
          encrypted: false,
          requestId: 'rid',
          principal,
        }),
        'x-forwarded-for',
      ),
    ).toBe('10.0.0.5');
  });

  it('the headers that once forged an identity through a plain object stay plain headers', () => {
    // In this order they made the old object's prototype an array, so undici iterated the
    // client's numbered pairs as the headers and dropped keygate's (issue 9, item 1).
    const out = build([
      '0',
      'X-Keygate-Account',
      '0',
      'root',
      '1',
      'host',
      '1',
      'evil',
      '__proto__',
      'x',
      '__proto__',
      'y',
      'constructor',
      'c',
      'length',
      '2',
      'Host',
      'kg',
    ]);
    expect(pairs(out)).toEqual([
      ['0', 'X-Keygate-Account'],
      ['0', 'root'],
      ['1', 'host'],
      ['1', 'evil'],
      ['__proto__', 'x'],
      ['__proto__', 'y'],
      ['constructor', 'c'],
      ['length', '2'],
      ['x-forwarded-for', '10.1.2.3'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'kg'],
      ['x-real-ip', '10.1.2.3'],
      ['x-request-id', 'rid'],
      ['x-keygate-account', 'ci'],
      ['x-keygate-key-id', 'KEYID0000001'],
      ['x-keygate-role', 'reader'],
    ]);
    expect(Array.isArray(out)).toBe(true);
    expect(Object.getPrototypeOf(out)).toBe(Array.prototype);
  });
});

describe('header families (issue 9, item 7)', () => {
  const custom = { account: 'X-Auth-User', keyId: 'X-Auth-Key', role: 'X-Auth-Role' };
  const table: Array<[name: string, dropped: boolean]> = [
    // method overrides
    ['X-HTTP-Method-Override', true],
    ['x_http_method', true],
    ['X-Method-Override', true],
    // every X-Forwarded-*; keygate sets For/Proto/Host afresh
    ['X-Forwarded-Prefix', true],
    ['X-Forwarded-Port', true],
    ['X-Forwarded-Server', true],
    ['x_forwarded_ssl', true],
    ['Forwarded', true],
    // X-Original-*, X-Envoy-*, rewrites
    ['X-Original-URL', true],
    ['X-Original-Method', true],
    ['X-Original-Forwarded-For', true],
    ['X-Envoy-Original-Path', true],
    ['x-envoy-internal', true],
    ['X-Rewrite-URL', true],
    // client-address claims
    ['X-Real-IP', true],
    ['True-Client-IP', true],
    ['X-Client-IP', true],
    ['X-Cluster-Client-IP', true],
    ['CF-Connecting-IP', true],
    ['Fastly-Client-IP', true],
    // keygate's namespace, whatever the identity names are configured to
    ['X-Keygate-Account', true],
    ['X-Keygate-Anything', true],
    ['x_keygate_role', true],
    // the configured identity names
    ['X-Auth-User', true],
    ['x_auth_key', true],
    ['X-AUTH-ROLE', true],
    // upstream.dropHeaders: a prefix and a name, compared canonically
    ['X-Internal-Tenant', true],
    ['x_internal_', true],
    ['X-Debug', true],
    ['x_debug', true],
    // credentials, hop-by-hop, proxy-*
    ['Authorization', true],
    ['X-API-Key', true],
    ['Cookie', true],
    ['Proxy-Authorization', true],
    ['Proxy-Anything', true],
    ['TE', true],
    ['Trailer', true],
    ['Upgrade', true],
    ['Expect', true],
    ['Keep-Alive', true],
    ['Host', true],
    ['X-Request-Id', true],
    // neighbours that are not in a family pass
    ['X-Forwarded', false],
    ['X-Originally', false],
    ['X-Envoy', false],
    ['X-Debugging', false],
    ['X-Internal', false],
    ['X-Auth-Users', false],
    ['X-Keygate', false],
    ['X-HTTP-Methods', false],
    ['Accept', false],
    ['Content-Type', false],
    ['Set-Cookie', false],
  ];
  for (const [name, dropped] of table) {
    it(`${name} is ${dropped ? 'dropped' : 'forwarded'}`, () => {
      const out = builder([], custom, ['X-Internal-*', 'x_debug']).build({
        rawHeaders: [name, 'client-value'],
        remoteAddress: '10.1.2.3',
        encrypted: false,
        requestId: 'rid',
        principal,
      });
      // (keygate's own x-request-id and x-forwarded-host follow; the client's value is gone)
      expect(values(out, name.toLowerCase()).includes('client-value')).toBe(!dropped);
      if (name !== 'Host') expect(out.includes('client-value')).toBe(!dropped);
    });
  }
});

describe('property: whatever the client sends, keygate’s identity and origin are the only ones', () => {
  // Names that collide with JavaScript object and array properties, numbers, and every name
  // keygate asserts or drops, in their canonical spelling.
  const PROTO_NAMES = [
    ...Object.getOwnPropertyNames(Object.prototype),
    ...Object.getOwnPropertyNames(Array.prototype),
    ...Object.getOwnPropertyNames(Function.prototype),
    'prototype',
    '__proto__',
  ].filter((n) => /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(n));
  const NUMERIC = ['0', '1', '2', '3', '10', '4294967295', '-1', '1e3', 'NaN', 'Infinity'];
  const PROTECTED = [
    'host',
    'x-forwarded-for',
    'x-forwarded-proto',
    'x-forwarded-host',
    'x-real-ip',
    'x-request-id',
    'x-keygate-account',
    'x-keygate-key-id',
    'x-keygate-role',
  ];
  const FAMILY = [
    'forwarded',
    'x-forwarded-prefix',
    'x-forwarded-port',
    'x-original-url',
    'x-envoy-original-path',
    'x-keygate-scopes',
    'x-http-method-override',
    'x-http-method',
    'x-method-override',
    'true-client-ip',
    'x-client-ip',
    'x-rewrite-url',
    'x-api-key',
    'authorization',
    'cookie',
    'proxy-authorization',
    'connection',
    'keep-alive',
    'te',
    'upgrade',
  ];
  const POOL = [...PROTO_NAMES, ...NUMERIC, ...PROTECTED, ...FAMILY, 'accept', 'x-custom'];

  const variant = (name: string) =>
    fc
      .tuple(
        fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }),
        fc.boolean(),
      )
      .map(([upper, underscore]) => {
        const cased = [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('');
        return underscore ? cased.replaceAll('-', '_') : cased;
      });
  const token = fc.stringMatching(/^[a-z0-9_-]{1,10}$/);
  const headerName = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...POOL).chain(variant) },
    { weight: 1, arbitrary: token },
  );
  const headerValue = fc.oneof(
    fc.constantFrom('admin', 'root', 'X-Keygate-Account', 'evil.example', '1.2.3.4', ''),
    fc.stringMatching(/^[!-~]([ -~]{0,14}[!-~])?$/),
  );
  const connectionValue = fc
    .array(fc.constantFrom(...POOL).chain(variant), { maxLength: 4 })
    .map((names) => names.join(', '));
  const headerList = fc
    .array(
      fc.oneof(
        { weight: 8, arbitrary: fc.tuple(headerName, headerValue) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('Connection'), connectionValue) },
      ),
      { maxLength: 30 },
    )
    .map((list) => list.flat());

  // An oracle written apart from the builder: the families as regular expressions.
  const DROPPED =
    /^(connection|keep-alive|te|trailer|transfer-encoding|upgrade|expect|host|x-request-id|x-api-key|authorization|cookie|x-http-method-override|x-http-method|x-method-override|forwarded|x-real-ip|x-rewrite-url|true-client-ip|x-client-ip|x-cluster-client-ip|cf-connecting-ip|fastly-client-ip|proxy-.*|x-forwarded-.*|x-original-.*|x-envoy-.*|x-keygate-.*)$/;
  const canonical = (n: string) => n.toLowerCase().replace(/_/g, '-');

  it('exactly one of each identity and forwarding header, keygate’s values; nothing dropped passes; the rest in order', () => {
    fc.assert(
      fc.property(headerList, (raw) => {
        const out = build(raw, '10.9.8.7');
        const connectionNamed = new Set<string>();
        let host: string | undefined;
        for (let i = 0; i < raw.length; i += 2) {
          const lower = (raw[i] as string).toLowerCase();
          if (lower === 'connection') {
            for (const t of (raw[i + 1] as string).split(','))
              connectionNamed.add(canonical(t.trim()));
          }
          if (lower === 'host' && host === undefined) host = raw[i + 1] as string;
        }
        const kept: Array<[string, string]> = [];
        for (let i = 0; i < raw.length; i += 2) {
          const name = raw[i] as string;
          const c = canonical(name);
          if (!DROPPED.test(c) && !connectionNamed.has(c)) {
            kept.push([name.toLowerCase(), raw[i + 1] as string]);
          }
        }
        const keygate: Array<[string, string]> = [
          ['x-forwarded-for', '10.9.8.7'],
          ['x-forwarded-proto', 'http'],
          ...(host === undefined ? [] : [['x-forwarded-host', host] as [string, string]]),
          ['x-real-ip', '10.9.8.7'],
          ['x-request-id', 'rid'],
          ['x-keygate-account', 'ci'],
          ['x-keygate-key-id', 'KEYID0000001'],
          ['x-keygate-role', 'reader'],
        ];
        expect(pairs(out)).toEqual([...kept, ...keygate]);
        // And stated directly: one of each protected name, however spelt, none of the families.
        for (const name of PROTECTED) {
          const n = pairs(out).filter(([o]) => canonical(o) === name).length;
          expect(n, name).toBe(
            name === 'host' || (name === 'x-forwarded-host' && host === undefined) ? 0 : 1,
          );
        }
        for (const [name] of pairs(out).slice(0, kept.length)) {
          expect(DROPPED.test(canonical(name)), name).toBe(false);
        }
        expect(Array.isArray(out) && out.length % 2 === 0).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('the output is a plain flat array of strings, whatever names the client used', () => {
    fc.assert(
      fc.property(headerList, (raw) => {
        const out = build(raw);
        expect(Object.getPrototypeOf(out)).toBe(Array.prototype);
        expect(Object.keys(out)).toEqual(out.map((_, i) => String(i)));
        for (const item of out) expect(typeof item).toBe('string');
      }),
      { numRuns: 500 },
    );
  });
});

describe('chooseRequestId', () => {
  it('keeps a safe client id and replaces an unsafe one', () => {
    expect(chooseRequestId(['X-Request-Id', 'ci-run-42.step_3'])).toBe('ci-run-42.step_3');
    expect(chooseRequestId(['X-Request-Id', 'bad id\n{"level":"fatal"}'])).toMatch(
      /^[0-9a-f-]{36}$/,
    );
    expect(chooseRequestId([])).toMatch(/^[0-9a-f-]{36}$/);
  });
});
