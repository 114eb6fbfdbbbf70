import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import {
  type Gateway,
  startGateway,
  TEST_ACTOR,
  TEST_ROUTES,
  testConfig,
} from '../helpers/gateway.js';
import { type HttpResult, rawHttp, send } from '../helpers/http.js';
import { RecordingUpstream } from '../helpers/upstream.js';

/**
 * keygate answering for a data plane (DESIGN §13): the three forms of the original request,
 * each allowed, refused and without a key; identity only from keygate; revocation at once;
 * /_keygate/authz absent in proxy mode; nothing forwarded in authz mode.
 */

function storeIn(name: string) {
  return { type: 'file', file: { path: join(mkdtempSync(join(tmpdir(), name)), 'keys.json') } };
}

/** mode: authz without any upstream: the config an operator of a data plane writes. */
function authzOnlyConfig(extra: Record<string, unknown> = {}) {
  return parseConfig(
    stringify({
      mode: 'authz',
      listen: { host: '127.0.0.1', port: 0 },
      store: storeIn('keygate-authz-'),
      routes: TEST_ROUTES,
      log: { level: 'info' },
      ...extra,
    }),
    'authz-test-config',
  );
}

/**
 * An ordinary request through undici, like `send`, but not recorded as an admin API answer for
 * the OpenAPI check: /_keygate/authz is the data planes' endpoint, not part of the admin API.
 */
async function sendAuthz(
  baseUrl: string,
  path: string,
  // A flat [name, value, …] list sends duplicates and "_" names as they are.
  options: { method?: string; headers?: Record<string, string> | string[] } = {},
): Promise<HttpResult> {
  const res = await request(new URL(baseUrl).origin + path, {
    method: (options.method ?? 'GET') as 'GET',
    headers: options.headers ?? {},
  });
  const text = await res.body.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // an allow has an empty body
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

type Form = 'envoy' | 'nginx' | 'ingress-nginx' | 'forwarded';
const FORMS: Form[] = ['envoy', 'nginx', 'ingress-nginx', 'forwarded'];

/** Asks keygate about `method target` in one of the forms, with `headers` of the caller. */
function ask(
  gw: Gateway,
  form: Form,
  method: string,
  target: string,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  switch (form) {
    case 'envoy':
      return sendAuthz(gw.url, `/_keygate/authz${target}`, { method, headers });
    case 'nginx':
      return sendAuthz(gw.url, '/_keygate/authz', {
        headers: { ...headers, 'X-Original-URI': target, 'X-Original-Method': method },
      });
    case 'ingress-nginx':
      return sendAuthz(gw.url, '/_keygate/authz', {
        headers: {
          ...headers,
          'X-Original-URL': `https://costs.example.com${target}`,
          'X-Original-URI': target,
          'X-Original-Method': method,
        },
      });
    case 'forwarded':
      return sendAuthz(gw.url, '/_keygate/authz', {
        headers: { ...headers, 'X-Forwarded-Uri': target, 'X-Forwarded-Method': method },
      });
  }
}

let gw: Gateway;
let reader: { key: string; id: string };
let writer: { key: string; id: string };

beforeAll(async () => {
  gw = await startGateway({ config: authzOnlyConfig({ authz: { cacheTtl: '0' } }) });
  const r = await gw.issue('dash', 'reader');
  reader = { key: r.key, id: r.id };
  const w = await gw.issue('etl', 'member');
  writer = { key: w.key, id: w.id };
});

afterAll(async () => {
  await gw?.close();
});

describe.each(FORMS)('form %s', (form) => {
  it('allowed: 200, empty, identity headers from the key, X-Request-Id, no-store', async () => {
    const res = await ask(gw, form, 'GET', '/model/allocation/compute?window=1d', {
      'X-API-KEY': reader.key,
    });
    expect(res.status).toBe(200);
    expect(res.text).toBe('');
    expect(res.headers['x-keygate-account']).toBe('dash');
    expect(res.headers['x-keygate-key-id']).toBe(reader.id);
    expect(res.headers['x-keygate-role']).toBe('reader');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-request-id']).toMatch(/./);
    // Envoy / Istio delete exactly these from the request they forward: the credential.
    expect(res.headers['x-envoy-auth-headers-to-remove']).toBe('x-api-key, authorization');
    const access = await gw.logs.accessFor(res.headers['x-request-id']);
    expect(access).toMatchObject({ route: 'allocation', decision: 'allow', account: 'dash' });
  });

  it('refused by route policy: the status, JSON envelope and WWW-Authenticate of proxy mode', async () => {
    const scope = await ask(gw, form, 'POST', '/model/budget', { 'X-API-KEY': reader.key });
    expect(scope.status).toBe(403);
    expect(scope.json).toMatchObject({ code: 403, error: 'insufficient_scope' });
    expect(scope.headers['www-authenticate']).toBe(
      'Bearer realm="keygate", error="insufficient_scope"',
    );
    expect(scope.headers['x-keygate-account']).toBeUndefined();
    // Envoy reads the removal list on a 200 only; a refusal carries none.
    expect(scope.headers['x-envoy-auth-headers-to-remove']).toBeUndefined();
    const noRoute = await ask(gw, form, 'DELETE', '/model/assets', { 'X-API-KEY': reader.key });
    expect(noRoute.status).toBe(403);
    expect(noRoute.json.error).toBe('route_not_allowed');
    const access = await gw.logs.accessFor(scope.headers['x-request-id']);
    expect(access).toMatchObject({ route: 'budget-write', decision: 'deny' });
  });

  it('no key → 401 missing_credentials with the bare Bearer challenge; a wrong key → 401', async () => {
    const none = await ask(gw, form, 'GET', '/model/assets');
    expect(none.status).toBe(401);
    expect(none.json.error).toBe('missing_credentials');
    expect(none.headers['www-authenticate']).toBe('Bearer realm="keygate"');
    const wrong = await ask(gw, form, 'GET', '/model/assets', { Authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
  });

  it('the original path is normalised as in proxy mode: dot segments and encoded "/" refused', async () => {
    for (const target of ['/model/assets/../etl/x', '/model/%2e%2e/etl/x', '/model/a%2Fb']) {
      // undici would resolve the dot segments of Envoy's form itself: sent byte for byte.
      const res =
        form === 'envoy'
          ? await rawHttp(
              gw.port,
              `GET /_keygate/authz${target} HTTP/1.1\r\nHost: x\r\nX-API-KEY: ${reader.key}\r\nConnection: close\r\n\r\n`,
            )
          : await ask(gw, form, 'GET', target, { 'X-API-KEY': reader.key });
      expect(res.status, target).toBe(400);
      expect(res.json.error).toBe('invalid_path');
    }
  });

  it('a key in the original URL is credential_in_url, even with a valid credential', async () => {
    const res = await ask(gw, form, 'GET', `/model/assets?api_key=${reader.key}`, {
      'X-API-KEY': reader.key,
    });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('credential_in_url');
  });
});

it('Envoy form: a suffix climbing out of the endpoint (/_keygate/authz/../v1/…) is invalid_path', async () => {
  const res = await rawHttp(
    gw.port,
    `GET /_keygate/authz/../v1/service-accounts HTTP/1.1\r\nHost: x\r\nX-API-KEY: ${reader.key}\r\nConnection: close\r\n\r\n`,
  );
  expect(res.status).toBe(400);
  expect(res.json.error).toBe('invalid_path');
});

describe('identity is keygate’s, never the client’s', () => {
  it('forged X-Keygate-* (any spelling) on the authz request are never echoed back', async () => {
    const res = await sendAuthz(gw.url, '/_keygate/authz', {
      headers: [
        'X-API-KEY',
        reader.key,
        'X-Original-URI',
        '/model/assets',
        'X-Original-Method',
        'GET',
        'X-Keygate-Account',
        'root',
        'x_keygate_role',
        'admin',
        'X-KEYGATE-KEY-ID',
        'AAAAAAAAAAAA',
        'X-Keygate-Account',
        'root2',
      ],
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-keygate-account']).toBe('dash');
    expect(res.headers['x-keygate-role']).toBe('reader');
    expect(res.headers['x-keygate-key-id']).toBe(reader.id);
    expect(res.headers.x_keygate_role).toBeUndefined();
  });

  it('the Envoy header-removal list is keygate’s constant, whatever the client sends in its name', async () => {
    // A client naming headers for Envoy to remove (keygate's own identity, say) or spelling the
    // name with "_" must not shape the answer: Envoy would act on whatever keygate returns.
    const res = await sendAuthz(gw.url, '/_keygate/authz/model/assets', {
      headers: [
        'X-API-KEY',
        reader.key,
        'x-envoy-auth-headers-to-remove',
        'x-keygate-account',
        'X_Envoy_Auth_Headers_To_Remove',
        'x-keygate-role',
      ],
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-envoy-auth-headers-to-remove']).toBe('x-api-key, authorization');
    expect(res.headers.x_envoy_auth_headers_to_remove).toBeUndefined();
    const none = await sendAuthz(gw.url, '/_keygate/authz/model/assets', {
      headers: ['x-envoy-auth-headers-to-remove', 'x-keygate-account'],
    });
    expect(none.status).toBe(401);
    expect(none.headers['x-envoy-auth-headers-to-remove']).toBeUndefined();
  });
});

describe('conflicts and half forms', () => {
  it('two forms naming different requests → 400 conflicting_original_request, before the key', async () => {
    // A client behind Traefik adds X-Original-URI for a path its key may use; Traefik's own
    // X-Forwarded-Uri names the one it asked for.
    const res = await sendAuthz(gw.url, '/_keygate/authz', {
      headers: {
        'X-API-KEY': writer.key,
        'X-Original-URI': '/model/assets',
        'X-Original-Method': 'GET',
        'X-Forwarded-Uri': '/model/etl/x',
        'X-Forwarded-Method': 'GET',
      },
    });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('conflicting_original_request');
    const envoy = await sendAuthz(gw.url, '/_keygate/authz/model/assets', {
      headers: {
        'X-API-KEY': reader.key,
        'X-Forwarded-Uri': '/model/etl/x',
        'X-Forwarded-Method': 'GET',
      },
    });
    expect(envoy.json.error).toBe('conflicting_original_request');
  });

  it('the same request in two forms is fine', async () => {
    const res = await sendAuthz(gw.url, '/_keygate/authz/model/assets', {
      headers: {
        'X-API-KEY': reader.key,
        'X-Forwarded-Uri': '/model/assets',
        'X-Forwarded-Method': 'GET',
      },
    });
    expect(res.status).toBe(200);
  });

  it('a duplicated X-Original-URI → 400 conflicting_original_request', async () => {
    const res = await sendAuthz(gw.url, '/_keygate/authz', {
      headers: [
        'X-API-KEY',
        reader.key,
        'X-Original-URI',
        '/model/assets',
        'X_Original_URI',
        '/model/etl/x',
        'X-Original-Method',
        'GET',
      ],
    });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('conflicting_original_request');
  });

  it('X-Original-URI without X-Original-Method → 400 invalid_original_request (GET is not guessed)', async () => {
    const res = await sendAuthz(gw.url, '/_keygate/authz', {
      headers: { 'X-API-KEY': reader.key, 'X-Original-URI': '/model/assets' },
    });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_original_request');
    const none = await sendAuthz(gw.url, '/_keygate/authz', {
      headers: { 'X-API-KEY': reader.key },
    });
    expect(none.json.error).toBe('invalid_original_request');
  });
});

describe('revocation', () => {
  it('revoke → the very next authz answer is 401', async () => {
    const k = await gw.issue('temp', 'reader');
    const before = await ask(gw, 'nginx', 'GET', '/model/assets', { 'X-API-KEY': k.key });
    expect(before.status).toBe(200);
    await gw.app.keys.revokeKey(TEST_ACTOR, 'temp', k.id);
    for (const form of FORMS) {
      const after = await ask(gw, form, 'GET', '/model/assets', { 'X-API-KEY': k.key });
      expect(after.status, form).toBe(401);
      expect(after.json.error).toBe('revoked_key');
      expect(after.headers['x-keygate-account']).toBeUndefined();
    }
  });
});

describe('mode authz forwards nothing', () => {
  it('a path outside /_keygate is 404 not_found, with or without a valid key', async () => {
    for (const headers of [{}, { 'X-API-KEY': reader.key }]) {
      const res = await send(gw.url, '/model/assets', { headers });
      expect(res.status).toBe(404);
      expect(res.json.error).toBe('not_found');
    }
  });

  it('the admin API still answers under /_keygate/v1 (admin scope)', async () => {
    const res = await send(gw.url, '/_keygate/v1/service-accounts', {
      headers: { 'X-API-KEY': reader.key },
    });
    expect(res.status).toBe(403);
  });

  it('with an upstream configured, mode authz still forwards nothing', async () => {
    const upstream = await RecordingUpstream.start();
    onTestFinished(() => upstream.close());
    const g = await startGateway({
      config: testConfig(upstream.url, { mode: 'authz', store: storeIn('keygate-authz-up-') }),
    });
    onTestFinished(() => g.close());
    const k = await g.issue('dash', 'reader');
    const res = await send(g.url, '/model/assets', { headers: { 'X-API-KEY': k.key } });
    expect(res.status).toBe(404);
    const allowed = await ask(g, 'envoy', 'GET', '/model/assets', { 'X-API-KEY': k.key });
    expect(allowed.status).toBe(200);
    expect(upstream.requests).toEqual([]);
  });

  it('authz.cacheTtl sets Cache-Control: private, max-age', async () => {
    const g = await startGateway({ config: authzOnlyConfig({ authz: { cacheTtl: '30s' } }) });
    onTestFinished(() => g.close());
    const k = await g.issue('dash', 'reader');
    const res = await ask(g, 'forwarded', 'GET', '/model/assets', { 'X-API-KEY': k.key });
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('private, max-age=30');
  });

  it('authz.cacheTtl sets X-Accel-Expires on an allow only: never on a refusal, never at 0', async () => {
    const g = await startGateway({ config: authzOnlyConfig({ authz: { cacheTtl: '30s' } }) });
    onTestFinished(() => g.close());
    const k = await g.issue('dash', 'reader');
    const allowed = await ask(g, 'nginx', 'GET', '/model/assets', { 'X-API-KEY': k.key });
    expect(allowed.status).toBe(200);
    expect(allowed.headers['x-accel-expires']).toBe('30');
    for (const [path, headers] of [
      ['/model/assets', { 'X-API-KEY': `${k.key}x` }],
      ['/model/assets', {}],
      ['/model/etl/run', { 'X-API-KEY': k.key }],
    ] as const) {
      const refused = await ask(g, 'nginx', 'GET', path, headers);
      expect(refused.status).toBeGreaterThanOrEqual(400);
      expect(refused.headers['x-accel-expires']).toBeUndefined();
    }
    const none = await ask(gw, 'nginx', 'GET', '/model/assets', { 'X-API-KEY': reader.key });
    expect(none.status).toBe(200);
    expect(none.headers['x-accel-expires']).toBeUndefined();
  });
});

describe('mode proxy and both', () => {
  let upstream: RecordingUpstream;
  beforeAll(async () => {
    upstream = await RecordingUpstream.start();
  });
  afterAll(async () => {
    await upstream?.close();
  });
  beforeEach(() => upstream.reset());

  it('mode proxy: /_keygate/authz does not exist (the admin API answers: scope, then 404)', async () => {
    const g = await startGateway({
      config: testConfig(upstream.url, { store: storeIn('keygate-authz-proxy-') }),
    });
    onTestFinished(() => g.close());
    const r = await g.issue('dash', 'reader');
    const a = await g.issue('ops', 'admin');
    const headers = { 'X-Original-URI': '/model/assets', 'X-Original-Method': 'GET' };
    const asReader = await send(g.url, '/_keygate/authz', {
      headers: { ...headers, 'X-API-KEY': r.key },
    });
    expect(asReader.status).toBe(403);
    const asAdmin = await send(g.url, '/_keygate/authz', {
      headers: { ...headers, 'X-API-KEY': a.key },
    });
    expect(asAdmin.status).toBe(404);
    expect(asAdmin.json.error).toBe('not_found');
    expect(upstream.requests).toEqual([]);
  });

  it('mode both: proxies and answers, the authz endpoint needs no admin scope', async () => {
    const g = await startGateway({
      config: testConfig(upstream.url, { mode: 'both', store: storeIn('keygate-authz-both-') }),
    });
    onTestFinished(() => g.close());
    const r = await g.issue('dash', 'reader');
    const proxied = await send(g.url, '/model/assets', { headers: { 'X-API-KEY': r.key } });
    expect(proxied.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    const answered = await ask(g, 'nginx', 'GET', '/model/assets', { 'X-API-KEY': r.key });
    expect(answered.status).toBe(200);
    expect(answered.headers['x-keygate-account']).toBe('dash');
    expect(upstream.requests).toHaveLength(1);
  });
});
