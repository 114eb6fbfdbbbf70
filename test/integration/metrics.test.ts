import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { parsePrometheusText, series } from '../helpers/prom-text.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
let opsUrl: string;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  upstream.on('/slow', async (_req, res) => {
    await new Promise((r) => setTimeout(r, 3000));
    res.end('late');
  });
  gw = await startGateway({
    config: testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: redis.url } },
      upstream: { timeout: '1s' },
    }),
  });
  const ops = await gw.app.listenOps(0, '127.0.0.1');
  opsUrl = `http://127.0.0.1:${ops.port}`;
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

it('after a scripted mix, every counter has its exact value and label set, in valid Prometheus text', async () => {
  const dash = await gw.issue('dash', 'reader');
  const root = await gw.issue('root', 'admin');
  const as = (key: string, path: string, method = 'GET') =>
    send(gw.url, path, {
      method,
      headers: {
        'x-api-key': key,
        ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
      },
      ...(method === 'POST' ? { body: '{}' } : {}),
    });

  const statuses = [
    (await as(dash.key, '/model/allocation?window=1d')).status, // allowed ×3
    (await as(dash.key, '/model/allocation/summary')).status,
    (await as(dash.key, '/model/allocation')).status,
    (await as(dash.key, '/model/budget', 'POST')).status, // rule matched, scope missing
    (await as(dash.key, '/model/getProductKey')).status, // no rule
    (await as('kg_not_a_key', '/model/allocation')).status, // invalid ×2
    (await as(`${dash.key.slice(0, -1)}x`, '/model/allocation')).status,
    (await send(gw.url, '/model/allocation')).status, // missing
    (await as(dash.key, '/model/slow')).status, // upstream timeout
    (await as(root.key, '/_keygate/v1/service-accounts')).status, // admin
  ];
  expect(statuses).toEqual([200, 200, 200, 403, 403, 401, 401, 401, 504, 200]);
  await gw.logs.waitForAccess(10);

  const res = await send(opsUrl, '/metrics');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toContain('text/plain');
  const m = parsePrometheusText(res.text);
  const value = (name: string, labels: Record<string, string> = {}) => m.get(series(name, labels));

  // keygate_requests_total: route (rule name / none / admin), method, code, account
  const requests = [...m.entries()].filter(([k]) => k.startsWith('keygate_requests_total{'));
  expect(Object.fromEntries(requests)).toEqual({
    [series('keygate_requests_total', {
      route: 'allocation',
      method: 'GET',
      code: '200',
      account: 'dash',
    })]: 3,
    [series('keygate_requests_total', {
      route: 'budget-write',
      method: 'POST',
      code: '403',
      account: 'dash',
    })]: 1,
    [series('keygate_requests_total', {
      route: 'none',
      method: 'GET',
      code: '403',
      account: 'dash',
    })]: 1,
    [series('keygate_requests_total', {
      route: 'none',
      method: 'GET',
      code: '401',
      account: 'none',
    })]: 3,
    [series('keygate_requests_total', {
      route: 'slow',
      method: 'GET',
      code: '504',
      account: 'dash',
    })]: 1,
    [series('keygate_requests_total', {
      route: 'admin',
      method: 'GET',
      code: '200',
      account: 'root',
    })]: 1,
  });

  const decisions = [...m.entries()].filter(([k]) => k.startsWith('keygate_auth_decisions_total{'));
  expect(Object.fromEntries(decisions)).toEqual({
    [series('keygate_auth_decisions_total', { result: 'allow' })]: 5,
    [series('keygate_auth_decisions_total', { result: 'insufficient_scope' })]: 1,
    [series('keygate_auth_decisions_total', { result: 'route_not_allowed' })]: 1,
    [series('keygate_auth_decisions_total', { result: 'invalid_key' })]: 2,
    [series('keygate_auth_decisions_total', { result: 'missing_credentials' })]: 1,
  });

  // dash: one miss then hits; root: one miss; malformed keys never reach the cache.
  expect(value('keygate_key_cache_events_total', { event: 'miss' })).toBe(2);
  expect(value('keygate_key_cache_events_total', { event: 'fill' })).toBe(2);
  expect(value('keygate_key_cache_events_total', { event: 'hit' })).toBe(5);
  expect(value('keygate_key_verify_duration_seconds_count')).toBe(2);
  expect(value('keygate_key_verify_queue_depth')).toBe(0);

  expect(value('keygate_upstream_errors_total', { kind: 'timeout' })).toBe(1);
  expect([...m.keys()].filter((k) => k.startsWith('keygate_upstream_errors_total{'))).toHaveLength(
    1,
  );
  expect(value('keygate_request_duration_seconds_count', { route: 'allocation' })).toBe(3);
  expect(value('keygate_upstream_duration_seconds_count', { route: 'allocation' })).toBe(3);
  expect(value('keygate_upstream_duration_seconds_count', { route: 'slow' })).toBeUndefined(); // never answered
  expect(value('keygate_request_duration_seconds_bucket', { route: 'allocation', le: '300' })).toBe(
    3,
  );
  expect(value('keygate_store_up')).toBe(1);
  expect([...m.keys()].filter((k) => k.startsWith('keygate_store_errors_total{'))).toEqual([]);
  expect(value('keygate_inflight_requests')).toBe(0);
  // Default process metrics, on keygate's own registry with its prefix.
  expect(value('keygate_process_cpu_user_seconds_total')).toBeGreaterThan(0);
  expect([...m.keys()].some((k) => k.startsWith('keygate_nodejs_eventloop_lag_seconds'))).toBe(
    true,
  );

  // Bounded labels: no key id, no key, no raw path in any label value.
  for (const key of m.keys()) {
    expect(key).not.toContain(dash.id);
    expect(key).not.toContain('/model');
    expect(key).not.toContain('kg_');
  }
});

it('store errors are counted by operation and store_up drops when Redis is down', async () => {
  const cached = await gw.issue('cached', 'reader');
  expect(
    (await send(gw.url, '/model/allocation', { headers: { 'x-api-key': cached.key } })).status,
  ).toBe(200);
  const fresh = await gw.issue('fresh', 'reader');
  await redis.stop();
  try {
    const refused = await send(gw.url, '/model/allocation', {
      headers: { 'x-api-key': fresh.key },
    });
    expect([refused.status, refused.json.error]).toEqual([503, 'store_unavailable']);
    const ready = await send(opsUrl, '/readyz');
    expect(ready.status).toBe(503);
    const m = parsePrometheusText((await send(opsUrl, '/metrics')).text);
    expect(m.get(series('keygate_store_errors_total', { op: 'getKey' }))).toBeGreaterThanOrEqual(1);
    expect(m.get('keygate_store_up')).toBe(0);
  } finally {
    await redis.start();
  }
  // Recovery: ready again once the store answers.
  const deadline = Date.now() + 5000;
  while ((await send(opsUrl, '/readyz')).status !== 200 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  expect((await send(opsUrl, '/readyz')).status).toBe(200);
});

it('ops paths are served only on the ops port; on the proxy port they are ordinary (refused) paths', async () => {
  expect((await send(opsUrl, '/healthz')).json).toEqual({ status: 'ok' });
  const dash = await gw.issue('ops-check', 'reader');
  for (const path of ['/metrics', '/healthz', '/readyz']) {
    const res = await send(gw.url, path, { headers: { 'x-api-key': dash.key } });
    expect(res.status).toBe(403);
    expect(res.json.error).toBe('route_not_allowed');
  }
});
