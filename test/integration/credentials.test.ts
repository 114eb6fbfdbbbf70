import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/keys/key-format.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { wrongSecretFor } from '../helpers/flood-worker.mjs';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { type HttpResult, rawHttp, send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { ARGON2_RUNS, CACHE_MISSES, sample } from '../helpers/scrape.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
const clock = new FakeClock(Date.now());
let key: string;
let keyId: string;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  gw = await startGateway({
    config: testConfig(upstream.url, { store: { type: 'redis', redis: { url: redis.url } } }),
    clock,
  });
  const issued = await gw.issue('ci-reports', 'reader');
  key = issued.key;
  keyId = issued.id;
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

beforeEach(() => upstream.reset());

/**
 * Asserts the secret appears nowhere keygate wrote or sent, once the access line of `res` (the
 * last line its request writes) exists: checked earlier, the logs would not hold it yet.
 */
async function expectNoLeak(secret: string, res: HttpResult) {
  const access = await gw.logs.accessFor(res.headers['x-request-id']);
  expect(access.status).toBe(res.status);
  for (const line of gw.logs.raw) expect(line).not.toContain(secret);
  for (const r of upstream.requests) {
    expect(JSON.stringify(r.rawHeaders)).not.toContain(secret);
    expect(r.url).not.toContain(secret);
    expect(r.body).not.toContain(secret);
  }
}

describe('credential forms', () => {
  const forms: Array<[string, (k: string) => Record<string, string>]> = [
    ['X-API-KEY', (k) => ({ 'x-api-key': k })],
    ['Authorization: Bearer', (k) => ({ authorization: `Bearer ${k}` })],
    [
      'Authorization: bearer (scheme is case-insensitive)',
      (k) => ({ authorization: `bearer ${k}` }),
    ],
    [
      'Basic with the key as user name',
      (k) => ({ authorization: `Basic ${Buffer.from(`${k}:x`).toString('base64')}` }),
    ],
    [
      'Basic with no password',
      (k) => ({ authorization: `Basic ${Buffer.from(`${k}:`).toString('base64')}` }),
    ],
  ];
  for (const [name, headers] of forms) {
    it(`accepts ${name} and forwards without the credential`, async () => {
      const res = await send(gw.url, '/model/allocation?window=1d&aggregate=namespace', {
        headers: headers(key),
      });
      expect(res.status).toBe(200);
      expect(upstream.requests).toHaveLength(1);
      const forwarded = upstream.requests[0]!;
      expect(forwarded.url).toBe('/allocation?window=1d&aggregate=namespace');
      expect(forwarded.headers['x-api-key']).toBeUndefined();
      expect(forwarded.headers.authorization).toBeUndefined();
      expect(forwarded.headers['x-keygate-account']).toBe('ci-reports');
      expect(forwarded.headers['x-keygate-key-id']).toBe(keyId);
      expect(forwarded.headers['x-keygate-role']).toBe('reader');
      await expectNoLeak(key, res);
    });
  }
});

describe('refusals', () => {
  it('missing credentials: 401 with a challenge and no error attribute', async () => {
    const res = await send(gw.url, '/model/allocation');
    expect(res.status).toBe(401);
    expect(res.json).toMatchObject({ code: 401, error: 'missing_credentials' });
    expect(res.headers['www-authenticate']).toBe('Bearer realm="keygate"');
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.json.request_id).toBe(res.headers['x-request-id']);
  });

  it('malformed key: 401 invalid_key without a store look-up', async () => {
    const before = await sample(gw, CACHE_MISSES);
    const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': 'not-a-key' } });
    expect(res.status).toBe(401);
    expect(res.json.error).toBe('invalid_key');
    expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
    expect(await sample(gw, CACHE_MISSES)).toBe(before);
  });

  it('bad checksum: 401 invalid_key without a store look-up', async () => {
    const tampered = key.slice(0, 20) + (key[20] === 'a' ? 'b' : 'a') + key.slice(21);
    const before = await sample(gw, CACHE_MISSES);
    const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': tampered } });
    expect(res.status).toBe(401);
    expect(res.json.error).toBe('invalid_key');
    expect(await sample(gw, CACHE_MISSES)).toBe(before);
    await expectNoLeak(tampered, res);
  });

  it('unknown id: 401 invalid_key with one store read and no argon2', async () => {
    const unknown = generateKey('kg').full;
    const reads = await sample(gw, CACHE_MISSES);
    const argon = await sample(gw, ARGON2_RUNS);
    const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': unknown } });
    expect(res.status).toBe(401);
    expect(res.json.error).toBe('invalid_key');
    expect(await sample(gw, CACHE_MISSES)).toBe(reads + 1);
    expect(await sample(gw, ARGON2_RUNS)).toBe(argon);
    await expectNoLeak(unknown, res);
  });

  it('wrong secret for a real id: 401 invalid_key; repeating it costs no more argon2', async () => {
    // Same id, another secret, valid checksum: only argon2 can tell it is wrong.
    const wrong = wrongSecretFor(keyId);
    const argon = await sample(gw, ARGON2_RUNS);
    const first = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': wrong } });
    const second = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': wrong } });
    expect([first.status, second.status]).toEqual([401, 401]);
    expect(first.json.error).toBe('invalid_key');
    expect(await sample(gw, ARGON2_RUNS)).toBe(argon + 1);
    expect(upstream.requests).toHaveLength(0);
    await expectNoLeak(wrong, second);
  });

  it('expired key: 401 expired_key once its expiry passes', async () => {
    const issued = await gw.issue('short-lived', 'reader', { expiresAt: clock.seconds + 60 });
    const ok = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': issued.key } });
    expect(ok.status).toBe(200);
    clock.advance(61_000);
    const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': issued.key } });
    expect(res.status).toBe(401);
    expect(res.json.error).toBe('expired_key');
    await expectNoLeak(issued.key, res);
  });

  it('two credentials in one request: 400 ambiguous_credentials', async () => {
    const res = await send(gw.url, '/model/allocation', {
      headers: { 'x-api-key': key, authorization: `Bearer ${key}` },
    });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('ambiguous_credentials');
    expect(upstream.requests).toHaveLength(0);
  });

  it('duplicate X-API-KEY headers: 400, even when both copies hold the same valid key', async () => {
    const res = await rawHttp(
      gw.port,
      `GET /model/allocation HTTP/1.1\r\nHost: t\r\nX-API-KEY: ${key}\r\nX-API-KEY: ${key}\r\nConnection: close`,
    );
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('ambiguous_credentials');
    expect(upstream.requests).toHaveLength(0);
  });

  it('unsupported Authorization scheme: 401 missing_credentials', async () => {
    const res = await send(gw.url, '/model/allocation', {
      headers: { authorization: `Token ${key}` },
    });
    expect(res.status).toBe(401);
    expect(res.json.error).toBe('missing_credentials');
  });

  it('a key in the URL is refused (400 credential_in_url), never forwarded', async () => {
    const res = await send(gw.url, `/model/allocation?window=1d&api_key=${key}`, {
      headers: { 'x-api-key': key },
    });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('credential_in_url');
    expect(upstream.requests).toHaveLength(0);
  });

  it('no error body or log line carries the key', async () => {
    for (const [path, status, error] of [
      [`/model/${key}`, 400, 'credential_in_url'],
      [`/model/allocation?k=${key}`, 400, 'credential_in_url'],
      [`/model/allocation/x${key}`, 400, 'credential_in_url'],
      ['/nope', 403, 'route_not_allowed'],
    ] as const) {
      const res = await send(gw.url, path, { headers: { 'x-api-key': key } });
      expect([res.status, res.json.error], path).toEqual([status, error]);
      expect(res.text).not.toContain(key);
      // This request's own access line (its path is where a key in the URL would show).
      await expectNoLeak(key, res);
    }
    expect(upstream.requests).toHaveLength(0);
  });
});
