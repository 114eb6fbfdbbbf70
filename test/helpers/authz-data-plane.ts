import { expect, it } from 'vitest';
import { type Gateway, startGateway, TEST_ACTOR, testConfig } from './gateway.js';
import { send } from './http.js';
import { RedisServer } from './redis-server.js';
import { until } from './until.js';
import { RecordingUpstream } from './upstream.js';

export interface DataPlaneUnderTest {
  /** The data plane's own address (nginx, Caddy, …) in front of the recording Aggregator. */
  url: string;
  upstream: RecordingUpstream;
  /** keygate in authz mode, answering the data plane. */
  gw: Gateway;
  account: string;
  reader: string;
}

/** What stands behind a data plane under test: a real Redis, the recording Aggregator, keygate. */
export interface AuthzBackend {
  redis: RedisServer;
  upstream: RecordingUpstream;
  /** keygate in authz mode (Redis store), trusting the data plane on 127.0.0.1. */
  gw: Gateway;
  /** A reader key of `account`. */
  reader: string;
  /** host:port of keygate and of the Aggregator, for the data plane's config. */
  keygateHost: string;
  aggregatorHost: string;
  close(): Promise<void>;
}

export async function startAuthzBackend(account: string): Promise<AuthzBackend> {
  const redis = await RedisServer.start();
  const upstream = await RecordingUpstream.start();
  const gw = await startGateway({
    config: testConfig(upstream.url, {
      mode: 'authz',
      store: { type: 'redis', redis: { url: redis.url } },
      trustedProxies: ['127.0.0.1/32'],
    }),
  });
  const reader = (await gw.issue(account, 'reader')).key;
  return {
    redis,
    upstream,
    gw,
    reader,
    keygateHost: `127.0.0.1:${gw.port}`,
    aggregatorHost: new URL(upstream.url).host,
    close: async () => {
      await gw.close();
      await upstream.close();
      await redis.destroy();
    },
  };
}

/**
 * The cases every shipped authz snippet must pass in its real data plane (issue 12): allowed
 * with keygate's identity and without the key, refusals (route, scope, no key, bad key) that
 * never reach the Aggregator, forged identity headers in any spelling dropped, revocation at
 * once. `keygateBodies`: the data plane passes keygate's JSON refusal through (Caddy does;
 * nginx's auth_request answers with its own page). `revocationBoundMs`: the data plane caches
 * allows (keygate's authz.cacheTtl), so a revocation must take effect within that bound (plus
 * a second of the data plane's clock granularity) rather than at once.
 */
export function authzDataPlaneCases(
  plane: () => DataPlaneUnderTest,
  options: {
    keygateBodies: boolean;
    revocationBoundMs?: number;
    /** The path the Aggregator sees for a client path (ingress-nginx rewrites /model away). */
    upstreamPath?: (clientPath: string) => string;
    /**
     * Statuses for a request that carries its own X-Original-URL / X-Forwarded-Uri / -Method
     * naming another request: [an allowed request claiming a forbidden one, a forbidden request
     * claiming an allowed one]. Default [200, 403]: the data plane hides them from keygate. A
     * data plane that cannot (ingress-nginx without snippets) must at least refuse both.
     */
    clientFormStatuses?: readonly [number, number];
  },
): void {
  const upstreamPath = options.upstreamPath ?? ((p: string) => p);
  it('allowed: the Aggregator gets the request with keygate identity and without the key', async () => {
    const { url, upstream, account, reader } = plane();
    upstream.reset();
    const res = await send(url, '/model/allocation?window=1d', {
      headers: { 'x-api-key': reader },
    });
    expect(res.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    const seen = upstream.requests[0];
    expect(seen?.url).toBe(upstreamPath('/model/allocation?window=1d'));
    expect(seen?.headers['x-keygate-account']).toBe(account);
    expect(seen?.headers['x-keygate-role']).toBe('reader');
    expect(seen?.headers['x-api-key']).toBeUndefined();
    expect(JSON.stringify(seen?.rawHeaders)).not.toContain(reader);
  });

  it('Bearer and Basic credentials are stripped too', async () => {
    const { url, upstream, reader } = plane();
    upstream.reset();
    const basic = Buffer.from(`${reader}:`).toString('base64');
    for (const authorization of [`Bearer ${reader}`, `Basic ${basic}`]) {
      expect((await send(url, '/model/assets', { headers: { authorization } })).status).toBe(200);
    }
    expect(upstream.requests).toHaveLength(2);
    for (const seen of upstream.requests) {
      expect(seen.headers.authorization).toBeUndefined();
      expect(JSON.stringify(seen.rawHeaders)).not.toContain(reader);
    }
  });

  it('refused by scope (403), route (403), no key and a bad key (401): the Aggregator sees nothing', async () => {
    const { url, upstream, reader } = plane();
    upstream.reset();
    const cases = [
      { path: '/model/etl/run', key: reader, status: 403, error: 'insufficient_scope' },
      { path: '/model/not-a-route', key: reader, status: 403, error: 'route_not_allowed' },
      { path: '/model/allocation', key: undefined, status: 401, error: 'missing_credentials' },
      { path: '/model/allocation', key: `${reader}x`, status: 401, error: 'invalid_key' },
    ];
    for (const c of cases) {
      const res = await send(url, c.path, c.key ? { headers: { 'x-api-key': c.key } } : {});
      expect(res.status).toBe(c.status);
      if (options.keygateBodies) expect(res.json.error).toBe(c.error);
    }
    expect(upstream.requests).toHaveLength(0);
  });

  it('forged identity headers from the client, in any spelling, never reach the Aggregator', async () => {
    const { url, upstream, account, reader } = plane();
    upstream.reset();
    const res = await send(url, '/model/allocation', {
      headers: {
        'x-api-key': reader,
        'X-Keygate-Account': 'root',
        'X-KEYGATE-ROLE': 'admin',
        'x-keygate-key-id': 'forged',
        X_Keygate_Account: 'root',
        x_keygate_role: 'admin',
      },
    });
    expect(res.status).toBe(200);
    const raw = upstream.requests[0]?.rawHeaders ?? [];
    const identity = raw.filter((_, i) => i % 2 === 1 && /^x[-_]keygate/i.test(raw[i - 1] ?? ''));
    // Exactly keygate's three (account, key id, role); none of the client's.
    expect(identity).toHaveLength(3);
    expect(identity).toContain(account);
    expect(identity).toContain('reader');
    for (const forged of ['root', 'admin', 'forged']) expect(identity).not.toContain(forged);
  });

  it(
    options.revocationBoundMs === undefined
      ? 'a revoked key is refused at once'
      : `a revoked key is refused within the cache bound (${options.revocationBoundMs} ms)`,
    async () => {
      const { url, gw, account } = plane();
      const revokedAccount = `${account}-revoked`;
      const issued = await gw.issue(revokedAccount, 'reader');
      const headers = { 'x-api-key': issued.key };
      expect((await send(url, '/model/allocation', { headers })).status).toBe(200);
      await gw.app.keys.revokeKey(TEST_ACTOR, revokedAccount, issued.id);
      if (options.revocationBoundMs !== undefined) {
        await until(
          async () => (await send(url, '/model/allocation', { headers })).status === 401,
          'the revocation to outlast the cached allow',
          options.revocationBoundMs + 1500,
        );
      }
      const after = await send(url, '/model/allocation', { headers });
      expect(after.status).toBe(401);
      if (options.keygateBodies) expect(after.json.error).toBe('revoked_key');
    },
  );

  it('a client’s own X-Original-URL / X-Forwarded-Uri / -Method never choose the verdict', async () => {
    const { url, upstream, reader } = plane();
    upstream.reset();
    const forged = (path: string, method: string) => ({
      'x-api-key': reader,
      'X-Original-URL': `http://h${path}`,
      'X-Original-URI': path,
      'X-Original-Method': method,
      'X-Forwarded-Uri': path,
      'X-Forwarded-Method': method,
    });
    const statuses = [
      (await send(url, '/model/allocation', { headers: forged('/model/etl/run', 'POST') })).status,
      (await send(url, '/model/etl/run', { headers: forged('/model/allocation', 'GET') })).status,
    ];
    const expected = options.clientFormStatuses ?? [200, 403];
    expect(statuses).toEqual(expected);
    expect(upstream.requests.map((r) => r.url)).toEqual(
      expected[0] === 200 ? [upstreamPath('/model/allocation')] : [],
    );
  });
}
