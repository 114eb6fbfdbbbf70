import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin-client.js';
import { type ServeProcess, spawnServe, writeTempConfig } from '../helpers/cli.js';
import { mintKey, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let redis: RedisServer;
let upstream: RecordingUpstream;
let a: ServeProcess;
let b: ServeProcess;
let admin: ReturnType<typeof adminClient>;
let loaded: ReturnType<typeof testConfig>;

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
  [a, b] = await Promise.all([spawnServe(file), spawnServe(file)]);
  admin = adminClient(a.url, (await mintKey(loaded, 'root', 'admin')).key);
  await waitForSubscribers(2);
});

afterAll(async () => {
  await a?.stop('SIGKILL');
  await b?.stop('SIGKILL');
  await upstream?.close();
  await redis?.destroy();
});

async function waitForSubscribers(count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Number(redisCli('PUBSUB', 'NUMSUB', 'kg:events').split('\n')[1]) < count) {
    if (Date.now() > deadline) throw new Error(`expected ${count} subscribers on kg:events`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Revokes through A a key B has cached; returns how long until B refuses it. */
async function revokeAndMeasure(account: string): Promise<number> {
  const { key, id } = await mintKey(loaded, account, 'reader');
  const viaB = () => send(b.url, '/model/allocation', { headers: { 'x-api-key': key } });
  expect((await viaB()).status).toBe(200); // B verified it and holds it in its cache (TTL 60 s)
  expect((await viaB()).status).toBe(200);

  const started = performance.now();
  expect((await admin.revoke(account, id)).status).toBe(204);
  for (;;) {
    const res = await viaB();
    if (res.status === 401) {
      expect(res.json.error).toBe('revoked_key');
      return performance.now() - started;
    }
    expect(res.status).toBe(200);
    if (performance.now() - started > 5000)
      throw new Error('B still accepts the revoked key after 5 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

it('a key revoked through A is refused by B within 1 s although B had it cached', async () => {
  const ms = await revokeAndMeasure('dash-one');
  console.log(`revocation through A seen by B after ${ms.toFixed(1)} ms (cache TTL 60 s)`);
  expect(ms).toBeLessThan(1000);
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

  const ms = await revokeAndMeasure('dash-two');
  console.log(
    `after a pub/sub reconnect: revocation through A seen by B after ${ms.toFixed(1)} ms`,
  );
  expect(ms).toBeLessThan(1000);
});
