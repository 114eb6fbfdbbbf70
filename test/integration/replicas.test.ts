import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin-client.js';
import { type ServeProcess, spawnServe, writeTempConfig } from '../helpers/cli.js';
import { DelayProxy } from '../helpers/delay-proxy.js';
import { mintKey, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

const run = promisify(execFile);

let redis: RedisServer;
let upstream: RecordingUpstream;
let a: ServeProcess;
let b: ServeProcess;
let admin: ReturnType<typeof adminClient>;
let loaded: ReturnType<typeof testConfig>;
let configFile: string;
let slowLink: DelayProxy;

const redisCli = (...args: string[]) =>
  execFileSync('redis-cli', ['-p', String(redis.port), ...args], { encoding: 'utf8' }).trim();

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  const settings = {
    store: { type: 'redis', redis: { url: redis.url } },
    keys: { cacheTtl: '60s' },
  };
  loaded = testConfig(upstream.url, settings);
  const file = writeTempConfig({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstream.url, stripPrefix: '/model' },
    routes: TEST_ROUTES,
    ...settings,
  });
  configFile = file;
  // B reaches Redis over a link that delivers 250 ms late, so B learns of every invalidation
  // well after A has sent it: the window in which a replica could still honour a revoked key.
  slowLink = await DelayProxy.start(redis.port, 250);
  const slowFile = writeTempConfig({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstream.url, stripPrefix: '/model' },
    routes: TEST_ROUTES,
    ...settings,
    store: { type: 'redis', redis: { url: `redis://127.0.0.1:${slowLink.port}` } },
  });
  [a, b] = await Promise.all([spawnServe(file), spawnServe(slowFile)]);
  admin = adminClient(a.url, (await mintKey(loaded, 'root', 'admin')).key);
  await waitForSubscribers(2);
});

afterAll(async () => {
  await a?.stop('SIGKILL');
  await b?.stop('SIGKILL');
  await upstream?.close();
  await slowLink?.close();
  await redis?.destroy();
});

async function waitForSubscribers(count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Number(redisCli('PUBSUB', 'NUMSUB', 'kg:events').split('\n')[1]) < count) {
    if (Date.now() > deadline) throw new Error(`expected ${count} subscribers on kg:events`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A key B has verified and holds in its cache (TTL 60 s), and a request through B with it. */
async function cachedOnB(account: string, role = 'reader') {
  const { key, id } = await mintKey(loaded, account, role);
  const viaB = (path = '/model/allocation', method = 'GET') =>
    send(b.url, path, { method, headers: { 'x-api-key': key } });
  expect((await viaB()).status).toBe(200);
  expect((await viaB()).status).toBe(200);
  return { key, id, viaB };
}

/**
 * Invariant 4 across replicas: once the admin call through A has returned, the very first
 * request through B is refused. No polling: B confirmed the invalidation before A answered.
 */
async function revokeThenFirstRequest(account: string): Promise<void> {
  const { id, viaB } = await cachedOnB(account);
  expect((await admin.revoke(account, id)).status).toBe(204);
  const first = await viaB();
  expect(first.status).toBe(401);
  expect(first.json.error).toBe('revoked_key');
}

it('a key revoked through A is refused by the first request to B after the revoke returns, although B had it cached', async () => {
  await revokeThenFirstRequest('dash-one');
});

it('the same after B loses its pub/sub connection and reconnects (and B drops its cache on reconnect)', async () => {
  // Kill every pub/sub connection on the server: A's and B's subscribers must come back by themselves.
  expect(Number(redisCli('CLIENT', 'KILL', 'TYPE', 'pubsub'))).toBeGreaterThanOrEqual(2);
  await waitForSubscribers(2);
  const deadline = Date.now() + 5000;
  while (!b.output().includes('invalidation channel reconnected') && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(b.output()).toContain('invalidation channel reconnected');
  await revokeThenFirstRequest('dash-two');
});

it('disable and role downgrade through A take effect on B before A answers', async () => {
  const reader = await cachedOnB('dash-three');
  expect(
    (await admin.call('PATCH', '/service-accounts/dash-three', { disabled: true })).status,
  ).toBe(200);
  const refused = await reader.viaB();
  expect(refused.status).toBe(401);
  expect(refused.json.error).toBe('account_disabled');

  const member = await cachedOnB('dash-four', 'member');
  expect((await member.viaB('/model/budget', 'POST')).status).toBe(200);
  expect(
    (await admin.call('PATCH', '/service-accounts/dash-four', { role: 'reader' })).status,
  ).toBe(200);
  const downgraded = await member.viaB('/model/budget', 'POST');
  expect(downgraded.status).toBe(403);
  expect(downgraded.json.error).toBe('insufficient_scope');
});

it('requests racing a revoke on B: none that starts after the revoke returned is allowed', async () => {
  const { id, viaB } = await cachedOnB('dash-five');
  let revokedAt = Number.POSITIVE_INFINITY;
  const late: number[] = [];
  let stop = false;
  // Two clients hammer B while A revokes; every answer to a request started after the revoke
  // returned must be a refusal.
  const hammer = async () => {
    while (!stop) {
      const started = performance.now();
      const res = await viaB();
      if (started > revokedAt) late.push(res.status);
    }
  };
  const loops = [hammer(), hammer()];
  await new Promise((r) => setTimeout(r, 50));
  expect((await admin.revoke('dash-five', id)).status).toBe(204);
  revokedAt = performance.now();
  // Long enough for several requests through B, whose store reads cross the slow link.
  await new Promise((r) => setTimeout(r, 1000));
  stop = true;
  await Promise.all(loops);
  expect(late.length).toBeGreaterThan(0);
  expect(late.filter((s) => s !== 401)).toEqual([]);
});

it('the CLI confirms its invalidations too: a revoke from the CLI is seen by both replicas when it exits', async () => {
  const onA = await mintKey(loaded, 'dash-six', 'reader');
  const viaA = () => send(a.url, '/model/allocation', { headers: { 'x-api-key': onA.key } });
  const viaB = () => send(b.url, '/model/allocation', { headers: { 'x-api-key': onA.key } });
  expect((await viaA()).status).toBe(200);
  expect((await viaB()).status).toBe(200);
  // Asynchronously: the slow link to B lives in this process and must keep relaying meanwhile.
  const { stderr } = await run(process.execPath, [
    'dist/cli.js',
    'keys',
    'revoke',
    'dash-six',
    onA.id,
    '--config',
    configFile,
  ]);
  expect(stderr).toContain('revoked key');
  expect(stderr).not.toContain('did not confirm');
  expect((await viaA()).status).toBe(401);
  expect((await viaB()).status).toBe(401);
});
