import { expect, it, onTestFinished } from 'vitest';
import { generateKey } from '../../src/keys/key-format.js';
import { wrongSecretFor } from '../helpers/flood-worker.mjs';
import { startGateway, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

it('Redis stops mid-test: cached keys keep working, the rest get 503, nothing is let through, and it recovers', async () => {
  const redis = await RedisServer.start({ persistent: true });
  onTestFinished(() => redis.destroy());
  const upstream = await RecordingUpstream.start();
  onTestFinished(() => upstream.close());
  const gw = await startGateway({
    config: testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: redis.url, commandTimeout: '500ms' } },
      keys: { cacheTtl: '60s' },
    }),
  });
  onTestFinished(() => gw.close());
  const get = (key: string, path = '/model/allocation') =>
    send(gw.url, path, { headers: { 'x-api-key': key } });

  const cached = await gw.issue('dashboards', 'reader');
  const uncached = await gw.issue('reports', 'reader');
  expect((await get(cached.key)).status).toBe(200); // now in the verified-key cache

  await redis.stop();

  // Cached key: still served from the verified-key cache.
  const whileDown = await get(cached.key);
  expect(whileDown.status).toBe(200);

  // Uncached key: the store cannot vouch for it, so 503 with Retry-After, never 401, never 200.
  const started = performance.now();
  const refused = await get(uncached.key);
  const elapsedMs = performance.now() - started;
  expect(refused.status).toBe(503);
  expect(refused.json.error).toBe('store_unavailable');
  expect(refused.headers['retry-after']).toBe('2');
  expect(elapsedMs).toBeLessThan(2000); // fails fast, does not hang on the outage
  console.log(`uncached key during the outage answered 503 in ${elapsedMs.toFixed(1)} ms`);

  // Unknown id: 503 too (it might exist), and a malformed key still 401 (no store needed).
  expect((await get(generateKey('kg').full)).status).toBe(503);
  expect((await get('kg_garbage')).status).toBe(401);
  // A wrong secret for the cached key's id, well-formed (valid checksum) so that it gets past
  // the parser to the cache: the cache vouches for the whole key, not its id, so this is a
  // miss, and with the store down nobody can vouch for it: 503, never 200.
  const wrong = wrongSecretFor(cached.id);
  const wrongAnswer = await get(wrong);
  expect(wrongAnswer.status).toBe(503);
  expect(wrongAnswer.json.error).toBe('store_unavailable');
  // Policy still applies to the cached key.
  expect((await get(cached.key, '/model/etl/log')).status).toBe(403);

  const forwardedDuringOutage = upstream.requests.filter(
    (r) => r.headers['x-keygate-account'] !== 'dashboards',
  );
  expect(forwardedDuringOutage).toHaveLength(0);

  await redis.start();

  // Recovery is automatic: the client reconnects by itself.
  const deadline = Date.now() + 15_000;
  let status = 0;
  while (Date.now() < deadline) {
    status = (await get(uncached.key)).status;
    if (status === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(status).toBe(200);
  // And the store, back, says what the outage could not: that secret is wrong.
  const wrongAfter = await get(wrong);
  expect(wrongAfter.status).toBe(401);
  expect(wrongAfter.json.error).toBe('invalid_key');
});
