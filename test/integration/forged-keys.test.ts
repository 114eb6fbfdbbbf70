import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { FakeClock } from '../helpers/fake-clock.js';
import { flood, wrongSecretFor } from '../helpers/flood-worker.mjs';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { type HttpResult, send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { ARGON2_RUNS, sample } from '../helpers/scrape.js';
import { RecordingUpstream } from '../helpers/upstream.js';

/**
 * DESIGN §12.6 over real sockets, a real Redis store and real argon2: forged keys (valid
 * checksum) for revoked, expired and unknown ids cost no argon2; for an active id, at most the
 * failure budget; a key that verified before keeps passing without argon2.
 */

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
let clock: FakeClock;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  clock = new FakeClock(Date.now());
  gw = await startGateway({
    clock,
    config: testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: redis.url } },
      keys: {
        // Cheap argon2 parameters: the test counts argon2 runs, it does not time them.
        argon2: { memoryCost: 1024, timeCost: 1 },
        failureBudget: { perKeyId: 5, perAddress: 8, window: '60s' },
      },
    }),
  });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

const get = (key: string) => send(gw.url, '/model/allocation', { headers: { 'x-api-key': key } });

/** A request from another loopback address, so the gateway sees another client. */
function getFrom(localAddress: string, key: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: gw.port,
        path: '/model/allocation',
        localAddress,
        headers: { 'x-api-key': key, connection: 'close' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: JSON.parse(text || '{}') as Record<string, unknown>,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function argon2Calls(): Promise<number> {
  return sample(gw, ARGON2_RUNS);
}

describe('forged keys against a real store', () => {
  it('forged keys for a revoked id: 401 revoked_key, no argon2, nothing upstream', async () => {
    const victim = await gw.issue('rev', 'reader');
    await gw.app.keys.revokeKey({ kind: 'cli', user: 'test' }, 'rev', victim.id);
    const before = await argon2Calls();
    const forwarded = upstream.requests.length;
    const statuses = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const res = await get(wrongSecretFor(victim.id));
        expect(res.json.error).toBe('revoked_key');
        return res.status;
      }),
    );
    expect(new Set(statuses)).toEqual(new Set([401]));
    expect((await get(victim.key)).json.error).toBe('revoked_key');
    expect(await argon2Calls()).toBe(before);
    expect(upstream.requests).toHaveLength(forwarded);
  });

  it('forged keys for an expired id: 401 expired_key, no argon2', async () => {
    const victim = await gw.issue('exp', 'reader', {
      expiresAt: Math.floor(clock.now() / 1000) + 60,
    });
    clock.advance(61_000);
    const before = await argon2Calls();
    for (let i = 0; i < 20; i++)
      expect((await get(wrongSecretFor(victim.id))).json.error).toBe('expired_key');
    expect((await get(victim.key)).json.error).toBe('expired_key');
    expect(await argon2Calls()).toBe(before);
  });

  it('forged keys for an active id: argon2 at most perKeyId times, then 429 auth_throttled with Retry-After; a key that verified before still passes', async () => {
    const victim = await gw.issue('active', 'reader');
    expect((await get(victim.key)).status).toBe(200); // verified once: known-good
    const before = await argon2Calls();
    const results: HttpResult[] = [];
    for (let i = 0; i < 20; i++) results.push(await get(wrongSecretFor(victim.id)));
    expect((await argon2Calls()) - before).toBe(5);
    expect(results.slice(0, 5).map((r) => r.json.error)).toEqual(Array(5).fill('invalid_key'));
    for (const r of results.slice(5)) {
      expect(r.status).toBe(429);
      expect(r.json.error).toBe('auth_throttled');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
    clock.advance(31_000); // past the verified-key cache TTL, within the failure window
    expect((await get(victim.key)).status).toBe(200);
    expect((await argon2Calls()) - before).toBe(5);
    clock.advance(60_000); // let the window pass for the tests after this one
  });

  it('the per-address budget: one client probing many ids is throttled; another client is not', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await gw.issue(`probe-${i}`, 'reader')).id);
    onTestFinished(() => clock.advance(60_000));
    const before = await argon2Calls();
    const codes: unknown[] = [];
    for (const id of ids) codes.push((await getFrom('127.0.0.2', wrongSecretFor(id))).json.error);
    expect((await argon2Calls()) - before).toBe(8);
    expect(codes.filter((c) => c === 'auth_throttled')).toHaveLength(4);
    const other = await getFrom('127.0.0.3', wrongSecretFor(ids[11] as string));
    expect(other.json.error).toBe('invalid_key');
    expect((await argon2Calls()) - before).toBe(9);
  });

  it('a concurrent flood of forged keys for an active id: argon2 bounded by the budget, never allowed', async () => {
    clock.advance(60_001);
    const victim = await gw.issue('flooded', 'reader');
    const before = await argon2Calls();
    const statuses = await flood(gw.url, victim.id, 100);
    const ran = (await argon2Calls()) - before;
    expect(ran).toBeLessThanOrEqual(5);
    expect(statuses.filter((s) => s === 401)).toHaveLength(ran);
    expect(statuses.every((s) => s === 401 || s === 429 || s === 503)).toBe(true);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(90);
  });
});

describe('the per-address budget behind a trusted proxy (an ingress)', () => {
  it('counts the client named by the proxy, not the proxy: one caller behind the ingress cannot throttle another', async () => {
    const proxyClock = new FakeClock(Date.now());
    const behind = await startGateway({
      clock: proxyClock,
      config: testConfig(upstream.url, {
        store: { type: 'redis', redis: { url: redis.url } },
        trustedProxies: ['127.0.0.1'],
        keys: {
          argon2: { memoryCost: 1024, timeCost: 1 },
          failureBudget: { perKeyId: 100, perAddress: 3, window: '60s' },
        },
      }),
    });
    onTestFinished(() => behind.close());
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await behind.issue(`ingress-${i}`, 'reader')).id);
    const via = (xff: string, key: string) =>
      send(behind.url, '/model/allocation', {
        headers: { 'x-api-key': key, 'x-forwarded-for': xff },
      });
    const attacker: unknown[] = [];
    // The attacker also forges an X-Forwarded-For entry of its own: the ingress appends the
    // real peer (203.0.113.7) after it, and that right-most untrusted hop is what counts.
    for (const id of ids)
      attacker.push((await via('198.51.100.1, 203.0.113.7', wrongSecretFor(id))).json.error);
    expect(attacker.slice(0, 3)).toEqual(['invalid_key', 'invalid_key', 'invalid_key']);
    expect(attacker.slice(3)).toEqual(['auth_throttled', 'auth_throttled']);
    // Another caller behind the same ingress still gets its verification.
    const other = await via('203.0.113.8', wrongSecretFor(ids[4] as string));
    expect(other.json.error).toBe('invalid_key');
    // And rotating the forged left-most entry buys the attacker nothing.
    const rotated = await via('192.0.2.99, 203.0.113.7', wrongSecretFor(ids[0] as string));
    expect(rotated.json.error).toBe('auth_throttled');
  });
});
