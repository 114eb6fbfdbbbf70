import { expect, it, onTestFinished } from 'vitest';
import { spawnServe, writeTempConfig } from '../helpers/cli.js';
import { mintKey, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

it('keygate serve starts before Redis (pod start order), answers 503, and recovers on its own', async () => {
  const upstream = await RecordingUpstream.start();
  onTestFinished(() => upstream.close());
  const redis = await RedisServer.reserve();
  onTestFinished(() => redis.destroy());
  const settings = { store: { type: 'redis', redis: { url: redis.url } } };
  const serve = await spawnServe(
    writeTempConfig({
      listen: { host: '127.0.0.1', port: 0 },
      upstream: { url: upstream.url, stripPrefix: '/model' },
      routes: TEST_ROUTES,
      ...settings,
    }),
  );
  onTestFinished(async () => {
    await serve.stop('SIGKILL');
  });
  const logged = Date.now() + 5000;
  while (!serve.output().includes('key store not reachable yet') && Date.now() < logged) {
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(serve.output()).toContain('key store not reachable yet');

  await redis.start();
  const loaded = testConfig(upstream.url, settings);
  const { key } = await mintKey(loaded, 'early', 'reader');

  await redis.stop();
  const whileDown = await send(serve.url, '/model/allocation', { headers: { 'x-api-key': key } });
  expect(whileDown.status).toBe(503);
  expect(whileDown.json.error).toBe('store_unavailable');

  await redis.start(); // not persistent: the key is gone, so recreate it once Redis is back
  const late = await mintKey(loaded, 'late', 'reader');

  const deadline = Date.now() + 15_000;
  let status = 0;
  while (Date.now() < deadline) {
    status = (await send(serve.url, '/model/allocation', { headers: { 'x-api-key': late.key } }))
      .status;
    if (status === 200) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(status).toBe(200);
});
