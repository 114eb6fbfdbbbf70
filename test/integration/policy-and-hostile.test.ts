import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { rawHttp, send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { type RecordedRequest, RecordingUpstream } from '../helpers/upstream.js';

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
const keys: Record<string, string> = {};

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  gw = await startGateway({
    config: testConfig(upstream.url, { store: { type: 'redis', redis: { url: redis.url } } }),
  });
  keys.reader = (await gw.issue('dash', 'reader')).key;
  keys.member = (await gw.issue('pipeline', 'member')).key;
  keys.admin = (await gw.issue('ops', 'admin')).key;
  keys.narrowed = (await gw.issue('pipeline', 'member', { scopes: ['read'] })).key;
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

beforeEach(() => upstream.reset());

describe('route policy per role', () => {
  const cases: Array<[role: string, method: string, path: string, status: number, error?: string]> =
    [
      ['reader', 'GET', '/model/allocation', 200],
      ['reader', 'GET', '/model/allocation/summary/topline?window=7d', 200],
      ['reader', 'HEAD', '/model/allocation', 200],
      ['reader', 'GET', '/model/assets', 200],
      ['reader', 'GET', '/model/assets/topline', 403, 'route_not_allowed'], // exact rule only
      ['reader', 'POST', '/model/assets', 403, 'route_not_allowed'], // method mismatch
      ['reader', 'DELETE', '/model/allocation', 403, 'route_not_allowed'],
      ['reader', 'GET', '/model/reports/abc', 200],
      ['reader', 'GET', '/model/reports/abc/def', 403, 'route_not_allowed'], // "*" is one segment
      ['reader', 'GET', '/model/reports', 403, 'route_not_allowed'],
      ['reader', 'POST', '/model/budget', 403, 'insufficient_scope'],
      ['member', 'POST', '/model/budget', 200],
      ['member', 'GET', '/model/etl/log', 403, 'insufficient_scope'],
      ['narrowed', 'POST', '/model/budget', 403, 'insufficient_scope'], // key narrower than its role
      ['narrowed', 'GET', '/model/allocation', 200],
      ['admin', 'GET', '/model/etl/log', 200],
      ['admin', 'GET', '/model/getProductKey', 403, 'route_not_allowed'], // no rule: deny by default
      ['admin', 'GET', '/model/serviceAccounts', 403, 'route_not_allowed'],
      ['member', 'GET', '/_keygate/v1/service-accounts', 403, 'insufficient_scope'],
    ];
  for (const [role, method, path, status, error] of cases) {
    it(`${role} ${method} ${path} → ${status}${error ? ` ${error}` : ''}`, async () => {
      const res = await send(gw.url, path, {
        method,
        headers: {
          'x-api-key': keys[role]!,
          ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
        },
        ...(method === 'POST' ? { body: '{"name":"b"}' } : {}),
      });
      expect(res.status).toBe(status);
      if (error) {
        expect(res.json.error).toBe(error);
        expect(upstream.requests).toHaveLength(0);
      } else {
        expect(upstream.requests).toHaveLength(1);
        // stripPrefix: /model is removed, the rest is forwarded byte for byte
        expect(upstream.requests[0]!.url).toBe(path.replace(/^\/model/, ''));
        expect(upstream.requests[0]!.method).toBe(method);
      }
    });
  }

  it('POST bodies reach the upstream intact', async () => {
    const body = JSON.stringify({ name: 'team-a', amount: 1200, window: 'month' });
    const res = await send(gw.url, '/model/budget', {
      method: 'POST',
      headers: { 'x-api-key': keys.member!, 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(200);
    expect(upstream.requests[0]!.body).toBe(body);
  });

  it('admin prefix is never forwarded, even for an admin key', async () => {
    const res = await send(gw.url, '/_keygate/v1/nothing-here', {
      headers: { 'x-api-key': keys.admin! },
    });
    expect(res.status).toBe(404);
    expect(upstream.requests).toHaveLength(0);
  });
});

/** Requests whose target must be refused outright: nothing reaches the upstream. */
const HOSTILE_TARGETS: Array<[name: string, requestLine: string, status?: number, error?: string]> =
  [
    ['raw ".." segment', 'GET /model/allocation/../etl/log HTTP/1.1'],
    ['raw "." segment', 'GET /model/allocation/./x HTTP/1.1'],
    ['"%2e%2e" lower case', 'GET /model/allocation/%2e%2e/etl/log HTTP/1.1'],
    ['"%2E%2E" upper case', 'GET /model/allocation/%2E%2E/etl/log HTTP/1.1'],
    ['".%2e" mixed', 'GET /model/allocation/.%2e/etl/log HTTP/1.1'],
    ['"%2e." mixed', 'GET /model/allocation/%2e./etl/log HTTP/1.1'],
    ['"%2e" single dot', 'GET /model/allocation/%2e/x HTTP/1.1'],
    ['"%2F" encoded slash', 'GET /model/allocation%2F..%2Fetl%2Flog HTTP/1.1'],
    ['"%2f" encoded slash lower', 'GET /model/allocation%2f..%2fetl HTTP/1.1'],
    ['"%5C" encoded backslash', 'GET /model/allocation%5C..%5Cetl HTTP/1.1'],
    ['"%5c" encoded backslash lower', 'GET /model/allocation/%5c..%5cetl HTTP/1.1'],
    ['raw backslash', 'GET /model/allocation\\..\\etl HTTP/1.1'],
    ['"//" inside', 'GET /model//allocation HTTP/1.1'],
    ['"//" leading', 'GET //model/allocation HTTP/1.1'],
    ['trailing "/"', 'GET /model/allocation/ HTTP/1.1'],
    ['"%00" NUL', 'GET /model/allocation%00 HTTP/1.1'],
    ['"%00" before extension', 'GET /model/allocation/x%00.json HTTP/1.1'],
    ['"%09" control character', 'GET /model/allocation/a%09b HTTP/1.1'],
    ['"%7F" DEL', 'GET /model/allocation/a%7Fb HTTP/1.1'],
    ['";" path parameter', 'GET /model/allocation;jsessionid=1 HTTP/1.1'],
    ['";" before dot segment', 'GET /model/allocation;/../etl/log HTTP/1.1'],
    ['"%3B" encoded semicolon', 'GET /model/allocation%3B/x HTTP/1.1'],
    ['"%23" encoded hash', 'GET /model/allocation%23/../../etl HTTP/1.1'],
    ['"%3F" encoded question mark', 'GET /model/allocation%3F/x HTTP/1.1'],
    ['"%252e" double encoding', 'GET /model/allocation/%252e%252e/etl HTTP/1.1'],
    ['malformed "%zz"', 'GET /model/allocation/%zz HTTP/1.1'],
    ['truncated "%2"', 'GET /model/allocation/%2 HTTP/1.1'],
    ['decoded unreserved then dot segment', 'GET /model/%61llocation/%2e%2e/etl/log HTTP/1.1'],
    ['absolute-form target', 'GET http://evil.example/model/allocation HTTP/1.1'],
    ['absolute-form to ourselves', 'GET http://127.0.0.1/model/allocation HTTP/1.1'],
    ['asterisk-form target', 'OPTIONS * HTTP/1.1'],
    ['authority-form CONNECT', 'CONNECT 127.0.0.1:80 HTTP/1.1', 405, 'method_not_allowed'],
    ['upper-case prefix', 'GET /MODEL/allocation HTTP/1.1', 403, 'route_not_allowed'],
    ['case-changed route', 'GET /model/Allocation HTTP/1.1', 403, 'route_not_allowed'],
    ['encoded upper-case route', 'GET /model/%41llocation HTTP/1.1', 403, 'route_not_allowed'],
    [
      'non-ASCII byte (refused by the HTTP parser)',
      'GET /model/allocation/\u00e9 HTTP/1.1',
      400,
      '',
    ],
  ];

describe('hostile request targets never reach the upstream', () => {
  for (const [name, line, status = 400, error = 'invalid_path'] of HOSTILE_TARGETS) {
    it(`${name} → ${status} ${error}`, async () => {
      const res = await rawHttp(
        gw.port,
        `${line}\r\nHost: keygate.test\r\nX-API-KEY: ${keys.reader}\r\nConnection: close`,
      );
      expect(res.status).toBe(status);
      // '' = refused by Node's HTTP parser, whose bare 400 has no body (no JSON error code).
      if (error) expect(res.json.error).toBe(error);
      else expect(res.text).toBe('');
      expect(upstream.requests).toHaveLength(0);
    });
  }
});

/** Headers a client may send but the upstream must never receive as sent. */
const HOSTILE_HEADERS: Array<[name: string, header: string, check: (r: RecordedRequest) => void]> =
  [
    [
      'X-Forwarded-For spoof',
      'X-Forwarded-For: 6.6.6.6',
      (r) => expect(r.headers['x-forwarded-for']).toBe('127.0.0.1'),
    ],
    [
      'X_Forwarded_For spoof',
      'X_Forwarded_For: 6.6.6.6',
      (r) => expect(r.headers['x-forwarded-for']).toBe('127.0.0.1'),
    ],
    [
      'X-Forwarded-Host spoof',
      'X-Forwarded-Host: evil.example',
      (r) => expect(r.headers['x-forwarded-host']).toBe('keygate.test'),
    ],
    [
      'X-Forwarded-Proto spoof',
      'X-Forwarded-Proto: https',
      (r) => expect(r.headers['x-forwarded-proto']).toBe('http'),
    ],
    [
      'X-Forwarded-Port',
      'X-Forwarded-Port: 443',
      (r) => expect(r.headers['x-forwarded-port']).toBeUndefined(),
    ],
    [
      'Forwarded',
      'Forwarded: for=6.6.6.6;proto=https',
      (r) => expect(r.headers.forwarded).toBeUndefined(),
    ],
    [
      'X-Real-IP spoof',
      'X-Real-IP: 6.6.6.6',
      (r) => expect(r.headers['x-real-ip']).toBe('127.0.0.1'),
    ],
    [
      'X-Original-URL',
      'X-Original-URL: /etl/log',
      (r) => expect(r.headers['x-original-url']).toBeUndefined(),
    ],
    [
      'X-Rewrite-URL',
      'X-Rewrite-URL: /etl/log',
      (r) => expect(r.headers['x-rewrite-url']).toBeUndefined(),
    ],
    [
      'X_Original_URL',
      'X_Original_URL: /etl/log',
      (r) => expect(JSON.stringify(r.rawHeaders)).not.toContain('/etl/log'),
    ],
    [
      'X-Keygate-Account spoof',
      'X-Keygate-Account: ops',
      (r) => expect(r.headers['x-keygate-account']).toBe('dash'),
    ],
    [
      'x-keygate-role lower-case spoof',
      'x-keygate-role: admin',
      (r) => expect(r.headers['x-keygate-role']).toBe('reader'),
    ],
    [
      'X-KEYGATE-KEY-ID upper-case spoof',
      'X-KEYGATE-KEY-ID: AAAAAAAAAAAA',
      (r) => expect(r.headers['x-keygate-key-id']).not.toBe('AAAAAAAAAAAA'),
    ],
    [
      'X_Keygate_Account underscore spoof',
      'X_Keygate_Account: ops',
      (r) => expect(JSON.stringify(r.rawHeaders)).not.toContain('"ops"'),
    ],
    [
      'X_Keygate_Role underscore spoof',
      'X_Keygate_Role: admin',
      (r) => expect(JSON.stringify(r.rawHeaders)).not.toContain('admin'),
    ],
    [
      'x-keygate_key-id mixed spoof',
      'x-keygate_key-id: AAAAAAAAAAAA',
      (r) => expect(JSON.stringify(r.rawHeaders)).not.toContain('AAAAAAAAAAAA'),
    ],
    [
      'Connection naming our identity header',
      'Connection: X-Keygate-Account',
      (r) => expect(r.headers['x-keygate-account']).toBe('dash'),
    ],
    [
      'Connection naming X-Forwarded-For',
      'Connection: close, X-Forwarded-For',
      (r) => expect(r.headers['x-forwarded-for']).toBe('127.0.0.1'),
    ],
    [
      'Connection naming a client header',
      'Connection: X-Custom\r\nX-Custom: hop',
      (r) => expect(r.headers['x-custom']).toBeUndefined(),
    ],
    [
      'Cookie with a session token',
      'Cookie: token=sso-session',
      (r) => expect(r.headers.cookie).toBeUndefined(),
    ],
    [
      'Proxy-Authorization',
      'Proxy-Authorization: Basic Zm9vOmJhcg==',
      (r) => expect(r.headers['proxy-authorization']).toBeUndefined(),
    ],
    // X_API_KEY next to X-API-KEY is now refused (400 ambiguous_credentials):
    // test/integration/credential-header-spelling.test.ts.
    ['Host spoof', 'X-Host: x', (r) => expect(r.headers.host).toBe(new URL(upstream.url).host)],
    [
      'Keep-Alive',
      'Keep-Alive: timeout=999',
      (r) => expect(r.headers['keep-alive']).toBeUndefined(),
    ],
    ['TE', 'TE: trailers', (r) => expect(r.headers.te).toBeUndefined()],
    [
      'X-Request-Id with injection',
      'X-Request-Id: a"b\\nc',
      (r) => expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/),
    ],
  ];

describe('hostile headers are stripped or replaced before forwarding', () => {
  for (const [name, header, check] of HOSTILE_HEADERS) {
    it(name, async () => {
      const res = await rawHttp(
        gw.port,
        `GET /model/allocation HTTP/1.1\r\nHost: keygate.test\r\nX-API-KEY: ${keys.reader}\r\n${header}\r\nConnection: close`,
      );
      expect(res.status).toBe(200);
      expect(upstream.requests).toHaveLength(1);
      check(upstream.requests[0]!);
      expect(JSON.stringify(upstream.requests[0]!.rawHeaders)).not.toContain(keys.reader);
    });
  }

  it('request smuggling (Transfer-Encoding with Content-Length) is refused by the parser', async () => {
    const res = await rawHttp(
      gw.port,
      `POST /model/budget HTTP/1.1\r\nHost: t\r\nX-API-KEY: ${keys.member}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /model/etl/log HTTP/1.1\r\nHost: t\r\n\r\n`,
    );
    expect(res.status).toBe(400);
    expect(res.text).toBe(''); // the parser's bare 400, not a keygate refusal further on
    expect(upstream.requests).toHaveLength(0);
  });

  it('headers over listen.maxHeaderBytes (32 KiB) get 431 and never reach the upstream', async () => {
    const res = await rawHttp(
      gw.port,
      `GET /model/allocation HTTP/1.1\r\nHost: t\r\nX-API-KEY: ${keys.reader}\r\nX-Filler: ${'a'.repeat(40 * 1024)}\r\nConnection: close`,
    );
    expect(res.status).toBe(431);
    expect(upstream.requests).toHaveLength(0);
    // 20 KiB of headers is fine (Kubecost filter strings can be long).
    const ok = await rawHttp(
      gw.port,
      `GET /model/allocation HTTP/1.1\r\nHost: t\r\nX-API-KEY: ${keys.reader}\r\nX-Filler: ${'a'.repeat(20 * 1024)}\r\nConnection: close`,
    );
    expect(ok.status).toBe(200);
  });

  it('WebSocket upgrade is refused with 501', async () => {
    const res = await rawHttp(
      gw.port,
      `GET /model/allocation HTTP/1.1\r\nHost: t\r\nX-API-KEY: ${keys.reader}\r\nConnection: Upgrade\r\nUpgrade: websocket`,
    );
    expect(res.status).toBe(501);
    expect(res.json.error).toBe('not_implemented');
    expect(upstream.requests).toHaveLength(0);
  });
});
