import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Invalidation } from '../../src/store/invalidation-bus.js';
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
import { RecordingUpstream } from '../helpers/upstream.js';

/**
 * One invalidation path, over real Redis pub/sub: a weakening write is applied to the writing
 * replica's verifier exactly once (not once directly and again from its own echo), to every
 * other replica once, and the publisher still gets every confirmation (its own echo is
 * confirmed, not re-applied: no "did not confirm" warning, no 2 s wait). Two gateways run in
 * this process on the same Redis; the CLI runs as the built binary.
 */

let redis: RedisServer;
let upstream: RecordingUpstream;
let a: Gateway;
let b: Gateway;
let configFile: string;
const applied = new Map<string, Invalidation[]>();

/** Counts the real verifier's applications (the one way an invalidation reaches its cache). */
function countApplications(name: string, gw: Gateway): void {
  const list: Invalidation[] = [];
  applied.set(name, list);
  const apply = gw.app.verifier.apply.bind(gw.app.verifier);
  gw.app.verifier.apply = (event) => {
    list.push(event);
    apply(event);
  };
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
  countApplications('a', a);
  countApplications('b', b);
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

/** A key both gateways have verified and cached. */
async function cachedOnBoth(account: string) {
  const issued = await a.issue(account, 'reader');
  for (const gw of [a, b]) {
    const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': issued.key } });
    expect(res.status).toBe(200);
  }
  applied.get('a')?.splice(0);
  applied.get('b')?.splice(0);
  return issued;
}

async function refusedOnBoth(key: string): Promise<void> {
  for (const gw of [a, b]) {
    const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': key } });
    expect(res.status).toBe(401);
    expect(res.json.error).toBe('revoked_key');
  }
}

it('an admin-API revoke through A: applied once on A and once on B before the call returns, every replica confirmed', async () => {
  const root = await a.issue('root', 'admin');
  const issued = await cachedOnBoth('via-api');
  applied.get('a')?.splice(0);
  const res = await adminClient(a.url, root.key).revoke('via-api', issued.id);
  expect(res.status).toBe(204);
  const expected = [{ kind: 'key', id: issued.id }];
  expect(applied.get('a')).toEqual(expected);
  expect(applied.get('b')).toEqual(expected);
  expect(a.logs.raw.join('\n')).not.toContain('did not confirm');
  await refusedOnBoth(issued.key);
});

it('a service-level revoke on B (as the CLI and the admin API share it): once on each replica', async () => {
  const issued = await cachedOnBoth('via-service');
  await b.app.keys.revokeKey(TEST_ACTOR, 'via-service', issued.id);
  const expected = [{ kind: 'key', id: issued.id }];
  expect(applied.get('a')).toEqual(expected);
  expect(applied.get('b')).toEqual(expected);
  expect(b.logs.raw.join('\n')).not.toContain('did not confirm');
  await refusedOnBoth(issued.key);
});

it('a CLI revoke (the built binary) reaches both replicas, once each, before the CLI exits', async () => {
  const issued = await cachedOnBoth('via-cli');
  const result = await runCli(['keys', 'revoke', 'via-cli', issued.id, '--config', configFile]);
  expect(result.code).toBe(0);
  expect(result.stderr).toContain('revoked key');
  expect(result.stderr).not.toContain('did not confirm');
  const expected = [{ kind: 'key', id: issued.id }];
  expect(applied.get('a')).toEqual(expected);
  expect(applied.get('b')).toEqual(expected);
  await refusedOnBoth(issued.key);
});

it('a message from an older replica (no origin) is still applied by every replica', async () => {
  applied.get('a')?.splice(0);
  applied.get('b')?.splice(0);
  const receivers = redisCli('PUBLISH', 'kg:events', '{"kind":"account","name":"legacy"}');
  expect(Number(receivers)).toBe(2);
  const deadline = Date.now() + 5000;
  while ((applied.get('a')?.length ?? 0) + (applied.get('b')?.length ?? 0) < 2) {
    if (Date.now() > deadline) throw new Error('the old-format event was not applied');
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(applied.get('a')).toEqual([{ kind: 'account', name: 'legacy' }]);
  expect(applied.get('b')).toEqual([{ kind: 'account', name: 'legacy' }]);
});
