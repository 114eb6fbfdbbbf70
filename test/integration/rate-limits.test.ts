import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin-client.js';
import { type ServeProcess, spawnServe, writeTempConfig } from '../helpers/cli.js';
import { mintKey, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

// Issue 14, Must show: two keygate processes on one real Redis share each account's quota.
// A refuses when Redis is down (rateLimitStoreDown: refuse, the default), B lets requests
// through (allow); everything else about them is the same.

let redis: RedisServer;
let upstream: RecordingUpstream;
let a: ServeProcess;
let b: ServeProcess;
let admin: ReturnType<typeof adminClient>;
let loaded: ReturnType<typeof testConfig>;

/** The role default: 3 requests per 2 s window. */
const QUOTA = { requests: 3, per: '2s' };

const redisCli = (...args: string[]) =>
  execFileSync('redis-cli', ['-p', String(redis.port), ...args], { encoding: 'utf8' }).trim();

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  const settings = {
    store: { type: 'redis', redis: { url: redis.url } },
    // Long enough that the keys stay verified from cache once Redis is stopped.
    keys: { cacheTtl: '60s' },
    rateLimits: { reader: QUOTA },
  };
  loaded = testConfig(upstream.url, settings);
  const common = {
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstream.url, stripPrefix: '/model' },
    routes: TEST_ROUTES,
    ...settings,
  };
  [a, b] = await Promise.all([
    spawnServe(writeTempConfig(common)),
    spawnServe(writeTempConfig({ ...common, rateLimitStoreDown: 'allow' })),
  ]);
  admin = adminClient(a.url, (await mintKey(loaded, 'root', 'admin')).key);
});

afterAll(async () => {
  await a?.stop('SIGKILL');
  await b?.stop('SIGKILL');
  await upstream?.close();
  await redis?.destroy();
});

/**
 * A reader key, verified and cached on both replicas through the admin API (a 403 there: admin
 * calls count against no quota), so the counted requests below are quick and the window holds.
 */
async function readerKey(account: string) {
  const { key } = await mintKey(loaded, account, 'reader');
  for (const replica of [a, b]) {
    const warm = await send(replica.url, '/_keygate/v1/service-accounts', {
      headers: { 'x-api-key': key },
    });
    expect(warm.status).toBe(403);
  }
  return (replica: ServeProcess) =>
    send(replica.url, '/model/allocation', { headers: { 'x-api-key': key } });
}

describe('per-account rate limits across two keygate processes on one Redis', () => {
  it('N allowed across both replicas, the (N+1)th refused on either, another account unaffected, headers present, reset after the window', async () => {
    const viaT1 = await readerKey('rl-team-one');
    const viaT2 = await readerKey('rl-team-two');

    const allowed = [await viaT1(a), await viaT1(b), await viaT1(a)];
    expect(allowed.map((r) => r.status)).toEqual([200, 200, 200]);
    for (const [i, r] of allowed.entries()) {
      expect(r.headers['ratelimit-policy']).toBe('"default";q=3;w=2');
      expect(r.headers.ratelimit).toMatch(new RegExp(`^"default";r=${2 - i};t=[12]$`));
    }
    const upstreamSeen = upstream.requests.length;

    for (const replica of [b, a]) {
      const refused = await viaT1(replica);
      expect(refused.status).toBe(429);
      expect(refused.json.error).toBe('rate_limited');
      expect(refused.headers['retry-after']).toMatch(/^[12]$/);
      expect(refused.headers['ratelimit-policy']).toBe('"default";q=3;w=2');
      expect(refused.headers.ratelimit).toMatch(/^"default";r=0;t=[12]$/);
    }
    // Refused requests never reached the upstream.
    expect(upstream.requests.length).toBe(upstreamSeen);

    // Another account of the same role has its own window.
    expect((await viaT2(b)).status).toBe(200);

    // One counter per account and window length, hash-tagged on the account (Cluster slot).
    expect(redisCli('GET', 'kg:rl:{rl-team-one}:2')).toBe('3');
    expect(Number(redisCli('PTTL', 'kg:rl:{rl-team-one}:2'))).toBeGreaterThan(0);

    // After the window: allowed again, on either replica.
    const refused = await viaT1(a);
    expect(refused.status).toBe(429);
    await new Promise((r) => setTimeout(r, Number(refused.headers['retry-after']) * 1000 + 100));
    const again = await viaT1(b);
    expect(again.status).toBe(200);
    expect(again.headers.ratelimit).toBe('"default";r=2;t=2');
  });

  it('an account override set through A (admin API) applies on B at once; null restores the role default', async () => {
    const via = await readerKey('rl-override');
    expect((await via(b)).status).toBe(200);
    const patched = await admin.call('PATCH', '/service-accounts/rl-override', {
      rate_limit: { requests: 1, per_seconds: 60 },
    });
    expect(patched.status).toBe(200);
    expect(patched.json.rate_limit).toEqual({ requests: 1, per_seconds: 60 });
    const shown = await admin.call('GET', '/service-accounts/rl-override');
    expect(shown.json.rate_limit).toEqual({ requests: 1, per_seconds: 60 });

    // B had the principal cached with no override: the invalidation reached it before A answered.
    const first = await via(b);
    expect(first.status).toBe(200);
    expect(first.headers['ratelimit-policy']).toBe('"default";q=1;w=60');
    const second = await via(a);
    expect(second.status).toBe(429);
    expect(Number(second.headers['retry-after'])).toBeGreaterThan(2);

    const cleared = await admin.call('PATCH', '/service-accounts/rl-override', {
      rate_limit: null,
    });
    expect(cleared.json.rate_limit).toBeNull();
    const back = await via(b);
    expect(back.headers['ratelimit-policy']).toBe('"default";q=3;w=2');
  });

  it('bad rate_limit bodies are refused with 400', async () => {
    for (const rate_limit of [
      { requests: 0, per_seconds: 1 },
      { requests: 1, per_seconds: 0 },
      { requests: 1.5, per_seconds: 1 },
      { requests: 1, per_seconds: 2_592_001 },
      { requests: 1 },
      { requests: '1', per_seconds: 1 },
      'none',
    ]) {
      const r = await admin.call('POST', '/service-accounts', {
        name: 'rl-bad',
        role: 'reader',
        rate_limit,
      });
      expect(r.status, JSON.stringify(rate_limit)).toBe(400);
    }
    // Hostile member names, sent as raw JSON (an object literal would not carry them).
    for (const member of ['__proto__', 'constructor', 'Requests']) {
      const raw = `{"name":"rl-bad","role":"reader","rate_limit":{"requests":1,"per_seconds":1,"${member}":1}}`;
      const r = await admin.call('POST', '/service-accounts', raw);
      expect(r.status, member).toBe(400);
    }
    expect((await admin.call('GET', '/service-accounts/rl-bad')).status).toBe(404);
  });

  it('an account with no quota (admin role) is never counted: no store call, no headers', async () => {
    const { key } = await mintKey(loaded, 'rl-unlimited', 'admin');
    const r = await send(a.url, '/model/allocation', { headers: { 'x-api-key': key } });
    expect(r.status).toBe(200);
    expect(r.headers.ratelimit).toBeUndefined();
    expect(redisCli('EXISTS', 'kg:rl:{rl-unlimited}:2')).toBe('0');
  });

  // Last: it stops Redis.
  it('Redis down: A (refuse) answers 503 store_unavailable, B (allow) forwards; both counted', async () => {
    const via = await readerKey('rl-outage');
    await redis.stop();
    const refused = await via(a);
    expect(refused.status).toBe(503);
    expect(refused.json.error).toBe('store_unavailable');
    const allowed = await via(b);
    expect(allowed.status).toBe(200);
    expect(allowed.headers.ratelimit).toBeUndefined();
    const metricsA = await (await fetch(`${a.opsUrl}/metrics`)).text();
    const metricsB = await (await fetch(`${b.opsUrl}/metrics`)).text();
    expect(metricsA).toMatch(
      /keygate_rate_limit_decisions_total\{result="store_down_refused",account="rl-outage"\} 1/,
    );
    expect(metricsB).toMatch(
      /keygate_rate_limit_decisions_total\{result="store_down_allowed",account="rl-outage"\} 1/,
    );
    expect(metricsA).toMatch(
      /keygate_rate_limit_decisions_total\{result="limited",account="rl-team-one"\} [1-9]/,
    );
  });
});
