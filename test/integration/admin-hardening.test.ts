import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ROUTES } from '../../src/admin/admin-api.js';
import { MAX_EXPIRES_AT, MAX_GRACE_SECONDS } from '../../src/keys/key-service.js';
import { adminClient } from '../helpers/admin-client.js';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { rawHttp } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
/** A full admin: unrestricted key of an admin-role account. */
let full: ReturnType<typeof adminClient>;
/** The same account, but a key narrowed to [admin]. */
let narrow: ReturnType<typeof adminClient>;
let narrowId: string;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  gw = await startGateway({
    config: testConfig(upstream.url, { store: { type: 'redis', redis: { url: redis.url } } }),
  });
  const rootKey = await gw.issue('root', 'admin');
  full = adminClient(gw.url, rootKey.key);
  const narrowKey = await gw.issue('root', 'admin', { scopes: ['admin'] });
  narrowId = narrowKey.id;
  narrow = adminClient(gw.url, narrowKey.key);
  expect((await full.createAccount('ci', 'member')).status).toBe(201);
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

async function snapshot(): Promise<string> {
  const accounts = await gw.store.listAccounts();
  const keys = await Promise.all(accounts.map((a) => gw.store.listKeys(a.name)));
  return JSON.stringify({ accounts, keys });
}

function auditLines(): Array<Record<string, unknown>> {
  return gw.logs.lines.filter((l) => l.type === 'audit');
}

describe('invariant 3 through the admin API: a key narrowed to [admin] grants nothing it lacks', () => {
  /** Asserts a 403 insufficient_scope that names what is missing, changed nothing, was audited. */
  async function refused(
    call: () => ReturnType<typeof narrow.call>,
    action: string,
    missing: RegExp,
  ) {
    const before = await snapshot();
    const res = await call();
    expect(res.status, res.text).toBe(403);
    expect(res.json.error).toBe('insufficient_scope');
    expect(res.json.message).toMatch(missing);
    expect(res.text).not.toMatch(/kg_[0-9A-Za-z]{12}_/);
    expect(await snapshot()).toBe(before);
    expect(auditLines().at(-1)).toMatchObject({
      action,
      actor: 'root',
      actor_key_id: narrowId,
      result: 'error',
      error: 'insufficient_scope',
    });
  }

  it('cannot mint an unrestricted key on an admin account (its own included); a full admin can', async () => {
    await refused(
      () => narrow.createKey('root', { description: 'escalate' }),
      'key.create',
      /read, write/,
    );
    await refused(
      () => narrow.createKey('root', { description: 'escalate', scopes: ['admin', 'read'] }),
      'key.create',
      /read/,
    );
    // What it holds, it may hand on.
    expect((await narrow.createKey('root', { description: 'ok', scopes: ['admin'] })).status).toBe(
      201,
    );
    expect((await full.createKey('root', { description: 'ok' })).status).toBe(201);
  });

  it('cannot create an admin-role account; a full admin can', async () => {
    await refused(
      () => narrow.call('POST', '/service-accounts', { name: 'evil', role: 'admin' }),
      'account.create',
      /role "admin".*read, write/,
    );
    expect((await full.createAccount('good-admin', 'admin')).status).toBe(201);
  });

  it('cannot raise an account to admin; a full admin can', async () => {
    expect((await full.createAccount('lowly', 'reader')).status).toBe(201);
    await refused(
      () => narrow.call('PATCH', '/service-accounts/lowly', { role: 'admin' }),
      'account.update',
      /read, write/,
    );
    const res = await full.call('PATCH', '/service-accounts/lowly', { role: 'admin' });
    expect(res.status).toBe(200);
    expect(res.json.role).toBe('admin');
  });

  it('may disable an admin account, but cannot re-enable it; a full admin can', async () => {
    expect((await full.createAccount('sleeper', 'admin')).status).toBe(201);
    const off = await narrow.call('PATCH', '/service-accounts/sleeper', { disabled: true });
    expect(off.status).toBe(200);
    expect(off.json.disabled).toBe(true);
    await refused(
      () => narrow.call('PATCH', '/service-accounts/sleeper', { disabled: false }),
      'account.update',
      /enabling .*read, write/,
    );
    expect(
      (await narrow.call('PATCH', '/service-accounts/sleeper', { description: 'harmless' })).status,
    ).toBe(200);
    const on = await full.call('PATCH', '/service-accounts/sleeper', { disabled: false });
    expect(on.status).toBe(200);
    expect(on.json.disabled).toBe(false);
  });

  it('cannot rotate an unrestricted admin key into a fresh one; may revoke it; a full admin can rotate', async () => {
    const victim = await gw.issue('root', 'admin');
    await refused(() => narrow.rotate('root', victim.id), 'key.rotate', /read, write/);
    expect((await full.rotate('root', victim.id, { grace_seconds: 0 })).status).toBe(201);
    const other = await gw.issue('root', 'admin');
    expect((await narrow.revoke('root', other.id)).status).toBe(204);
  });

  it('may still delete accounts and keys (weakening is always allowed)', async () => {
    expect((await full.createAccount('doomed', 'admin')).status).toBe(201);
    expect((await narrow.call('DELETE', '/service-accounts/doomed')).status).toBe(204);
  });
});

/** A raw request target, byte for byte, with a full admin key of its own account (ops). */
async function raw(method: string, target: string, body?: string) {
  const head =
    `${method} ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-API-Key: ${opsKeyText}\r\n` +
    (body === undefined
      ? ''
      : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`);
  return rawHttp(gw.port, `${head}\r\n${body ?? ''}`);
}
let opsKeyText = '';

describe('admin API robustness', () => {
  beforeAll(async () => {
    opsKeyText = (await gw.issue('ops', 'admin')).key;
  });

  /** No error line, no stack, no internal_error among the log lines written since `from`. */
  function assertNoErrorLogs(from: number) {
    const fresh = gw.logs.raw.slice(from);
    const bad = fresh
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((l) => l.level === 'error' || l.level === 'fatal' || l.error === 'internal_error');
    expect(bad).toEqual([]);
    expect(fresh.join('\n')).not.toMatch(/URIError|"stack"|\n\s+at /);
  }

  // Bytes that are not UTF-8 are refused by the path normaliser before any admin routing
  // (400 invalid_path); names and ids that do not match their patterns match no route, so
  // every method answers 404 (a 405 would mean the route matched a name it must not).
  const malformed: Array<[path: string, status: 400 | 404, error: string]> = [
    ['/service-accounts/%C0', 400, 'invalid_path'],
    ['/service-accounts/%C0%AE', 400, 'invalid_path'],
    ['/service-accounts/%E0%A4%A', 400, 'invalid_path'],
    ['/service-accounts/%E0%A4', 400, 'invalid_path'],
    ['/service-accounts/%FF', 400, 'invalid_path'],
    ['/service-accounts/%C0/api-keys', 400, 'invalid_path'],
    ['/service-accounts/ci/api-keys/%FF', 400, 'invalid_path'],
    [
      '/service-accounts/ci/api-keys/%C0%80%C0%80%C0%80%C0%80%C0%80%C0%80/rotate',
      400,
      'invalid_path',
    ],
    ['/service-accounts/__proto__', 404, 'not_found'],
    ['/service-accounts/constructor/api-keys/__proto__', 404, 'not_found'],
    ['/service-accounts/Bad_Name', 404, 'not_found'],
    ['/service-accounts/ci/api-keys/not-a-key-id', 404, 'not_found'],
  ];
  for (const [path, status, error] of malformed) {
    it(`${path}: every method → ${status} ${error} JSON, never a 500, nothing in the error log`, async () => {
      const from = gw.logs.raw.length;
      for (const method of ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE']) {
        const res = await raw(method, `/_keygate/v1${path}`, method === 'POST' ? '{}' : undefined);
        expect(res.status, `${method} ${path}: ${res.text}`).toBe(status);
        if (method !== 'HEAD') {
          expect(res.json.error, `${method} ${path}`).toBe(error);
          expect(res.headers['content-type']).toBe('application/json');
          expect(res.json.message).not.toMatch(/%[0-9A-F]{2}/i);
        }
      }
      assertNoErrorLogs(from);
    });
  }

  it('DELETE on a malformed account name is a 404 and never reaches the store', async () => {
    const before = await snapshot();
    const res = await raw('DELETE', '/_keygate/v1/service-accounts/ci%2Dx%C3%A9');
    expect(res.status).toBe(404);
    expect(await snapshot()).toBe(before);
  });

  describe('expires_at is bounded by 9999-12-31T23:59:59Z', () => {
    for (const [name, value] of [
      ['1e15', '1e15'],
      ['one second past year 9999', String(MAX_EXPIRES_AT + 1)],
      ['2^53 + 1 (not a safe integer)', '9007199254740993'],
      ['1e400 (Infinity)', '1e400'],
      ['-0.5', '-0.5'],
    ] as const) {
      it(`${name} → 400 naming expires_at, nothing written`, async () => {
        const before = await snapshot();
        const res = await full.call(
          'POST',
          '/service-accounts/ci/api-keys',
          `{"description":"d","expires_at":${value}}`,
        );
        expect(res.status, res.text).toBe(400);
        expect(res.json.message).toMatch(/^expires_at: /);
        expect(await snapshot()).toBe(before);
      });
    }

    it('the bound itself is accepted, and listing the key works', async () => {
      const res = await full.createKey('ci', { description: 'far', expires_at: MAX_EXPIRES_AT });
      expect(res.status, res.text).toBe(201);
      expect((await full.listKeys('ci')).status).toBe(200);
    });
  });

  describe('rotate body edge cases', () => {
    let keyId = '';
    beforeAll(async () => {
      keyId = (await gw.issue('ci', 'member')).id;
    });
    for (const body of [
      'null',
      '[]',
      '"7"',
      '{"grace_seconds":"60"}',
      '{"grace_seconds":1.5}',
      '{"grace_seconds":-1}',
      `{"grace_seconds":${MAX_GRACE_SECONDS + 1}}`,
      '{"grace_seconds":9007199254740993}',
      '{"grace_seconds":1e400}',
      '{"grace_seconds":null}',
      '{"grace_seconds":60,"grace_seconds":0}',
      '{"__proto__":{"grace_seconds":0}}',
      '{"grace_seconds":60,"extra":1}',
    ]) {
      it(`${body} → 400, the key is not rotated`, async () => {
        const before = await snapshot();
        const res = await full.call('POST', `/service-accounts/ci/api-keys/${keyId}/rotate`, body);
        expect(res.status, res.text).toBe(400);
        expect(await snapshot()).toBe(before);
      });
    }
  });

  describe('JSON bodies: prototype-named and duplicate members are refused, nothing changes', () => {
    const cases: Array<[method: string, path: string, body: string, message: RegExp]> = [
      [
        'POST',
        '/service-accounts',
        '{"name":"proto","role":"reader","__proto__":{"role":"admin"}}',
        /^__proto__: unknown field$/,
      ],
      [
        'POST',
        '/service-accounts',
        '{"__proto__":{"name":"proto","role":"admin"}}',
        /^__proto__: unknown field$/,
      ],
      [
        'POST',
        '/service-accounts',
        '{"name":"proto","role":"reader","constructor":{"prototype":{"role":"admin"}}}',
        /^constructor: unknown field$/,
      ],
      [
        'POST',
        '/service-accounts',
        '{"name":"proto","role":"reader","prototype":{}}',
        /^prototype: unknown field$/,
      ],
      [
        'POST',
        '/service-accounts',
        '{"name":"proto","role":"admin","role":"reader"}',
        /^role: duplicate field$/,
      ],
      [
        'POST',
        '/service-accounts',
        '{"name":"proto","role":"reader","__proto__":1,"__proto__":2}',
        /^__proto__: unknown field$/,
      ],
      ['PATCH', '/service-accounts/ci', '{"__proto__":{"role":"admin"}}', /^__proto__/],
      ['PATCH', '/service-accounts/ci', '{"disabled":true,"disabled":false}', /duplicate field/],
      [
        'POST',
        '/service-accounts/ci/api-keys',
        '{"description":"d","scopes":["read"],"scopes":["read","write"]}',
        /^scopes: duplicate field$/,
      ],
      [
        'POST',
        '/service-accounts/ci/api-keys',
        '{"description":"d","scopes":[{"__proto__":"admin"}]}',
        /^scopes\[0\].__proto__: unknown field$/,
      ],
    ];
    for (const [method, path, body, message] of cases) {
      it(`${method} ${path} ${body} → 400`, async () => {
        const before = await snapshot();
        const res = await full.call(method, path, body);
        expect(res.status, res.text).toBe(400);
        expect(res.json.error).toBe('bad_request');
        expect(res.json.message).toMatch(message);
        expect(await snapshot()).toBe(before);
        expect(({} as Record<string, unknown>).role).toBeUndefined();
        expect(Object.prototype).not.toHaveProperty('role');
      });
    }
  });

  it('property: any target under the prefix, any method → never 5xx; the service only sees valid names and ids', async () => {
    const segment = fc.oneof(
      fc.constantFrom(
        'service-accounts',
        'api-keys',
        'rotate',
        'openapi.json',
        'ghost',
        'x-1',
        'constructor',
        'AbCdEf123456',
        '__proto__',
        'prototype',
        '%C0',
        '%C0%AE',
        '%E0%A4%A',
        '%FF%FE',
        '%2e%2e',
        '%2F',
        '%',
        '..',
        '',
        'CI',
      ),
      // Arbitrary bytes, percent-encoded (valid and invalid UTF-8 alike).
      fc
        .uint8Array({ minLength: 1, maxLength: 6 })
        .map((b) => [...b].map((x) => `%${x.toString(16).padStart(2, '0')}`).join('')),
      fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,=:@-]{1,14}$/),
    );
    // Half the targets are real templates with hostile parameters, where the bugs live.
    const template = fc
      .tuple(fc.constantFrom(...ADMIN_ROUTES.map((r) => r.path)), segment, segment)
      .map(([path, name, id]) => path.slice(1).replace('{name}', name).replace('{id}', id));
    const target = fc.oneof(
      template,
      fc.array(segment, { maxLength: 6 }).map((s) => s.join('/')),
    );
    const method = fc.constantFrom('GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'OPTIONS', 'DELETE');
    const auditBefore = auditLines().length;
    const from = gw.logs.raw.length;
    await fc.assert(
      fc.asyncProperty(method, target, async (m, relative) => {
        const target = `/_keygate/v1/${relative}`;
        const res = await raw(m, target, m === 'POST' || m === 'PATCH' ? '{}' : undefined);
        expect(res.status, `${m} ${target}: ${res.text}`).toBeGreaterThanOrEqual(200);
        expect(res.status, `${m} ${target}: ${res.text}`).toBeLessThan(500);
      }),
      { numRuns: 250 },
    );
    // Every call that reached KeyService names a valid account (and key id): the audit target.
    for (const line of auditLines().slice(auditBefore)) {
      expect(line.target).toMatch(/^(\*|[a-z0-9][a-z0-9-]{0,62}(\/[0-9A-Za-z]{12})?)$/);
    }
    assertNoErrorLogs(from);
  });
});
