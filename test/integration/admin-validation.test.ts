import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ADMIN_ROUTES } from '../../src/admin/admin-api.js';
import { adminClient } from '../helpers/admin-client.js';
import { runCli, writeTempConfig } from '../helpers/cli.js';
import { forgeKey } from '../helpers/flood-worker.mjs';
import { type Gateway, startGateway, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
let admin: ReturnType<typeof adminClient>;
let existingKeyId: string;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  gw = await startGateway({
    config: testConfig(upstream.url, { store: { type: 'redis', redis: { url: redis.url } } }),
  });
  admin = adminClient(gw.url, (await gw.issue('root', 'admin')).key);
  await admin.createAccount('ci', 'member');
  existingKeyId = (
    (await admin.createKey('ci', { description: 'existing' })).json as { id: string }
  ).id;
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

/** Everything the store holds, for "nothing was half-written" checks. */
async function snapshot(): Promise<string> {
  const accounts = await gw.store.listAccounts();
  const keys = await Promise.all(accounts.map((a) => gw.store.listKeys(a.name)));
  return JSON.stringify({ accounts, keys });
}

describe('non-admin keys are refused on every admin route', () => {
  for (const role of ['reader', 'member']) {
    it(`${role}: 403 insufficient_scope on all ${ADMIN_ROUTES.length} routes, nothing changes`, async () => {
      const key = (await gw.issue(`${role}-acct`, role)).key;
      const before = await snapshot();
      for (const route of ADMIN_ROUTES) {
        const path = route.path.replace('{name}', 'ci').replace('{id}', existingKeyId);
        const res = await send(gw.url, `/_keygate/v1${path}`, {
          method: route.method,
          headers: { 'x-api-key': key, 'content-type': 'application/json' },
          ...(route.method === 'POST' || route.method === 'PATCH'
            ? { body: '{"name":"x","role":"admin","description":"x"}' }
            : {}),
        });
        expect(res.status, `${route.method} ${route.path}`).toBe(403);
        expect(res.json.error).toBe('insufficient_scope');
      }
      expect(await snapshot()).toBe(before);
      expect(upstream.requests.filter((r) => r.url.includes('_keygate'))).toHaveLength(0);
    });
  }

  it('no key: 401 on the admin API too', async () => {
    const res = await send(gw.url, '/_keygate/v1/service-accounts');
    expect(res.status).toBe(401);
  });
});

describe('bad input gets 400 naming the field, and nothing is half-written', () => {
  const cases: Array<
    [
      name: string,
      method: string,
      path: string,
      body: string,
      contentType: string,
      status: number,
      message: RegExp,
    ]
  > = [
    [
      'malformed JSON',
      'POST',
      '/service-accounts',
      '{"name": "x",',
      'application/json',
      400,
      /body: malformed JSON/,
    ],
    [
      'unknown field',
      'POST',
      '/service-accounts',
      '{"name":"x","role":"reader","admin":true}',
      'application/json',
      400,
      /admin: unknown field/,
    ],
    [
      'wrong type',
      'POST',
      '/service-accounts',
      '{"name":"x","role":7}',
      'application/json',
      400,
      /role: .*string/,
    ],
    [
      'missing field',
      'POST',
      '/service-accounts',
      '{"name":"x"}',
      'application/json',
      400,
      /role:/,
    ],
    [
      'bad name',
      'POST',
      '/service-accounts',
      '{"name":"Bad_Name","role":"reader"}',
      'application/json',
      400,
      /name:/,
    ],
    [
      'unknown role',
      'POST',
      '/service-accounts',
      '{"name":"x","role":"root"}',
      'application/json',
      400,
      /role: unknown role/,
    ],
    [
      'description too long',
      'POST',
      '/service-accounts',
      JSON.stringify({ name: 'x', role: 'reader', description: 'd'.repeat(201) }),
      'application/json',
      400,
      /description:/,
    ],
    ['not an object', 'POST', '/service-accounts', '[1,2]', 'application/json', 400, /body:/],
    [
      'past expiry',
      'POST',
      '/service-accounts/ci/api-keys',
      '{"description":"d","expires_at":1000}',
      'application/json',
      400,
      /expires_at: must be in the future/,
    ],
    [
      'fractional expiry',
      'POST',
      '/service-accounts/ci/api-keys',
      '{"description":"d","expires_at":1.5}',
      'application/json',
      400,
      /expires_at:/,
    ],
    [
      'expiry as string',
      'POST',
      '/service-accounts/ci/api-keys',
      '{"description":"d","expires_at":"2030-01-01"}',
      'application/json',
      400,
      /expires_at:/,
    ],
    [
      'missing description',
      'POST',
      '/service-accounts/ci/api-keys',
      '{}',
      'application/json',
      400,
      /description:/,
    ],
    [
      'blank description',
      'POST',
      '/service-accounts/ci/api-keys',
      '{"description":"  "}',
      'application/json',
      400,
      /description: required/,
    ],
    [
      'scopes wider than the role',
      'POST',
      '/service-accounts/ci/api-keys',
      '{"description":"d","scopes":["admin"]}',
      'application/json',
      400,
      /scopes: admin not granted/,
    ],
    [
      'scopes not an array',
      'POST',
      '/service-accounts/ci/api-keys',
      '{"description":"d","scopes":"read"}',
      'application/json',
      400,
      /scopes:/,
    ],
    ['empty PATCH', 'PATCH', '/service-accounts/ci', '{}', 'application/json', 400, /at least one/],
    [
      'PATCH disabled as string',
      'PATCH',
      '/service-accounts/ci',
      '{"disabled":"yes"}',
      'application/json',
      400,
      /disabled:/,
    ],
    [
      'negative grace',
      'POST',
      `/service-accounts/ci/api-keys/KEYID/rotate`,
      '{"grace_seconds":-1}',
      'application/json',
      400,
      /grace_seconds:/,
    ],
    [
      'grace too long',
      'POST',
      `/service-accounts/ci/api-keys/KEYID/rotate`,
      '{"grace_seconds":99999999}',
      'application/json',
      400,
      /grace_seconds:/,
    ],
    [
      'not JSON (415)',
      'POST',
      '/service-accounts',
      'name=x&role=reader',
      'application/x-www-form-urlencoded',
      415,
      /must be JSON/,
    ],
    [
      'too large (413)',
      'POST',
      '/service-accounts',
      JSON.stringify({ name: 'x', role: 'reader', description: 'd'.repeat(20_000) }),
      'application/json',
      413,
      /at most 16384 bytes/,
    ],
    [
      'duplicate account (409)',
      'POST',
      '/service-accounts',
      '{"name":"ci","role":"reader"}',
      'application/json',
      409,
      /already exists/,
    ],
    [
      'unknown account (404)',
      'POST',
      '/service-accounts/nobody/api-keys',
      '{"description":"d"}',
      'application/json',
      404,
      /does not exist/,
    ],
    [
      'unknown key (404)',
      'DELETE',
      '/service-accounts/ci/api-keys/AAAAAAAAAAAA',
      '',
      'application/json',
      404,
      /does not exist/,
    ],
    [
      'key of another account (404)',
      'DELETE',
      '/service-accounts/root/api-keys/KEYID',
      '',
      'application/json',
      404,
      /does not exist/,
    ],
    [
      'wrong method (405)',
      'PUT',
      '/service-accounts/ci',
      '{}',
      'application/json',
      405,
      /not allowed/,
    ],
    [
      'unknown endpoint (404)',
      'GET',
      '/nothing',
      '',
      'application/json',
      404,
      /no such keygate API endpoint/,
    ],
  ];
  for (const [name, method, rawPath, body, contentType, status, message] of cases) {
    it(`${name} → ${status}`, async () => {
      const path = rawPath.replace('KEYID', existingKeyId);
      const before = await snapshot();
      const res = await admin.call(method, path, body === '' ? undefined : body, {
        'content-type': contentType,
      });
      expect(res.status).toBe(status);
      expect(res.json.message).toMatch(message);
      expect(res.headers['content-type']).toBe('application/json');
      expect(await snapshot()).toBe(before);
    });
  }

  it('405 names the allowed methods', async () => {
    const res = await admin.call('PUT', '/service-accounts/ci', '{}');
    expect(res.headers.allow).toBe('GET, PATCH, DELETE');
  });
});

describe('bootstrap on an empty store', () => {
  it('no admin API call works until the CLI makes the first admin key; then it does', async () => {
    const own = await RedisServer.start();
    onTestFinished(() => own.destroy());
    const config = {
      upstream: { url: upstream.url, stripPrefix: '/model' },
      routes: TEST_ROUTES,
      store: { type: 'redis', redis: { url: own.url } },
    };
    const empty = await startGateway({ config: testConfig(upstream.url, { store: config.store }) });
    onTestFinished(() => empty.close());
    // Well-formed (valid checksum), so each call gets as far as the empty store: refused there.
    const unknown = forgeKey('AAAAAAAAAAAA', 'A'.repeat(43));
    for (const route of ADMIN_ROUTES) {
      const res = await send(
        empty.url,
        `/_keygate/v1${route.path.replace('{name}', 'admin').replace('{id}', 'AAAAAAAAAAAA')}`,
        {
          method: route.method,
          headers: { 'x-api-key': unknown },
        },
      );
      expect([res.status, res.json.error], `${route.method} ${route.path}`).toEqual([
        401,
        'invalid_key',
      ]);
    }
    const file = writeTempConfig(config);
    expect(
      (await runCli(['accounts', 'create', 'admin', '--role', 'admin', '--config', file])).code,
    ).toBe(0);
    const made = await runCli([
      'keys',
      'create',
      'admin',
      '--description',
      'bootstrap',
      '--config',
      file,
    ]);
    expect(made.code).toBe(0);
    const res = await send(empty.url, '/_keygate/v1/service-accounts', {
      headers: { 'x-api-key': made.stdout.trim() },
    });
    expect(res.status).toBe(200);
    expect((res.json.items as Array<{ name: string }>).map((a) => a.name)).toEqual(['admin']);
  });
});
