import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin-client.js';
import { runCli, writeTempConfig } from '../helpers/cli.js';
import { FastHasher } from '../helpers/fast-hasher.js';
import {
  type Gateway,
  startGateway,
  TEST_ACTOR,
  TEST_ROUTES,
  testConfig,
} from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { CACHE_MISSES, INVALIDATIONS, sample } from '../helpers/scrape.js';
import { RecordingUpstream } from '../helpers/upstream.js';

/**
 * One invalidation path, over real Redis pub/sub: a weakening write is applied to the writing
 * replica's verifier exactly once (not once directly and again from its own echo), to every
 * other replica once, and the publisher still gets every confirmation (its own echo is
 * confirmed, not re-applied: no "did not confirm" warning, no 2 s wait). Two gateways run in
 * this process on the same Redis; the CLI runs as the built binary.
 *
 * Observed as an operator would: applications are keygate_key_cache_events_total
 * {event="invalidation"} on each replica's /metrics; which event was applied shows in the
 * answers (the revoked key is refused at once, a sibling key of its account stays cached).
 */

let redis: RedisServer;
let upstream: RecordingUpstream;
let a: Gateway;
let b: Gateway;
let configFile: string;

/** Invalidations each replica has applied so far, from its /metrics. */
async function applications(): Promise<[number, number]> {
  return [await sample(a, INVALIDATIONS), await sample(b, INVALIDATIONS)];
}

/** Invalidations applied on each replica since `before`. */
async function appliedSince(before: [number, number]): Promise<[number, number]> {
  const [nowA, nowB] = await applications();
  return [nowA - before[0], nowB - before[1]];
}

const redisCli = (...args: string[]) =>
  execFileSync('redis-cli', ['-p', String(redis.port), ...args], { encoding: 'utf8' }).trim();

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  const settings = {
    store: { type: 'redis', redis: { url: redis.url } },
    keys: { cacheTtl: '60s' },
  };
  const config = testConfig(upstream.url, settings);
  configFile = writeTempConfig({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstream.url, stripPrefix: '/model' },
    routes: TEST_ROUTES,
    ...settings,
  });
  a = await startGateway({ config, hasher: new FastHasher() });
  b = await startGateway({ config, hasher: new FastHasher() });
  // Both subscribed before any write: PUBLISH counts them, so each must confirm.
  const deadline = Date.now() + 10_000;
  while (Number(redisCli('PUBSUB', 'NUMSUB', 'kg:events').split('\n')[1]) < 2) {
    if (Date.now() > deadline) throw new Error('gateways never subscribed to kg:events');
    await new Promise((r) => setTimeout(r, 20));
  }
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await upstream?.close();
  await redis?.destroy();
});

/**
 * Two keys of one account, both verified and cached on both gateways: `issued` is the one the
 * test revokes, `sibling` shows that only that key's verdict was dropped (a key invalidation,
 * not an account one). `before` is the invalidation count on each replica once both are cached.
 */
async function cachedOnBoth(account: string, role = 'reader') {
  const issued = await a.issue(account, role);
  const sibling = await a.issue(account, role);
  for (const gw of [a, b]) {
    for (const key of [issued.key, sibling.key]) {
      const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': key } });
      expect(res.status).toBe(200);
    }
  }
  return { issued, sibling, before: await applications() };
}

/** The revoked key is refused on both replicas; its sibling is still served from each cache. */
async function onlyKeyDroppedOnBoth(key: string, sibling: string): Promise<void> {
  for (const gw of [a, b]) {
    const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': key } });
    expect(res.status).toBe(401);
    expect(res.json.error).toBe('revoked_key');
    const misses = await sample(gw, CACHE_MISSES);
    const kept = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': sibling } });
    expect(kept.status).toBe(200);
    expect(await sample(gw, CACHE_MISSES)).toBe(misses);
  }
}

it('an admin-API revoke through A: applied once on A and once on B before the call returns, every replica confirmed', async () => {
  const root = await a.issue('root', 'admin');
  const { issued, sibling, before } = await cachedOnBoth('via-api');
  const res = await adminClient(a.url, root.key).revoke('via-api', issued.id);
  expect(res.status).toBe(204);
  expect(await appliedSince(before)).toEqual([1, 1]);
  expect(a.logs.raw.join('\n')).not.toContain('did not confirm');
  await onlyKeyDroppedOnBoth(issued.key, sibling.key);
});

it('a service-level revoke on B (as the CLI and the admin API share it): once on each replica', async () => {
  const { issued, sibling, before } = await cachedOnBoth('via-service');
  await b.app.keys.revokeKey(TEST_ACTOR, 'via-service', issued.id);
  expect(await appliedSince(before)).toEqual([1, 1]);
  expect(b.logs.raw.join('\n')).not.toContain('did not confirm');
  await onlyKeyDroppedOnBoth(issued.key, sibling.key);
});

it('a CLI revoke (the built binary) reaches both replicas, once each, before the CLI exits', async () => {
  const { issued, sibling, before } = await cachedOnBoth('via-cli');
  const result = await runCli(['keys', 'revoke', 'via-cli', issued.id, '--config', configFile]);
  expect(result.code).toBe(0);
  expect(result.stderr).toContain('revoked key');
  expect(result.stderr).not.toContain('did not confirm');
  expect(await appliedSince(before)).toEqual([1, 1]);
  await onlyKeyDroppedOnBoth(issued.key, sibling.key);
});

it('a message from an older replica (no origin) is still applied by every replica', async () => {
  const { issued, before } = await cachedOnBoth('legacy');
  // Disabled in the store behind both gateways' backs (no invalidation): they keep serving the
  // key from their caches until an event for the account arrives.
  await a.store.updateAccount('legacy', {
    disabled: true,
    updatedAt: Math.floor(Date.now() / 1000),
  });
  for (const gw of [a, b]) {
    const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': issued.key } });
    expect(res.status).toBe(200);
  }
  const receivers = redisCli('PUBLISH', 'kg:events', '{"kind":"account","name":"legacy"}');
  expect(Number(receivers)).toBe(2);
  const deadline = Date.now() + 5000;
  for (;;) {
    const [onA, onB] = await appliedSince(before);
    if (onA + onB >= 2) break;
    if (Date.now() > deadline) throw new Error('the old-format event was not applied');
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(await appliedSince(before)).toEqual([1, 1]);
  // It was the account's event: both replicas dropped its verdicts and read it afresh.
  for (const gw of [a, b]) {
    const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': issued.key } });
    expect(res.status).toBe(401);
    expect(res.json.error).toBe('account_disabled');
  }
});
