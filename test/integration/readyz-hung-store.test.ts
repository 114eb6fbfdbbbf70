import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { openStore } from '../../src/store/open-store.js';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

/**
 * Kubelet's default readiness probe timeout is 1 s (timeoutSeconds: 1). A probe that gets no
 * answer in time is a failure with no reason, and a slow /readyz under a hanging Redis makes the
 * ops port look dead. So /readyz must ANSWER (503, with a reason) well inside 1 s while Redis is
 * frozen. The 1 s below is that correctness bound, not a speed target (keygate waits 400 ms).
 */
const PROBE_TIMEOUT_MS = 1000;

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
let opsUrl: string;
/** Store pings in flight right now, and the most ever seen at once. */
const pings = { inFlight: 0, max: 0, total: 0 };

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  // Redis's command timeout (2 s) is longer than the probe timeout: the hang must be bounded
  // by readiness itself, not by the client.
  const config = testConfig(upstream.url, {
    store: { type: 'redis', redis: { url: redis.url, commandTimeout: '2s' } },
  });
  const { store, bus } = await openStore(config.store, { requireConnection: true });
  // The real Redis store, with its pings counted (not replaced): does readiness pile them up?
  const ping = store.ping.bind(store);
  store.ping = async () => {
    pings.total++;
    pings.max = Math.max(pings.max, ++pings.inFlight);
    try {
      await ping();
    } finally {
      pings.inFlight--;
    }
  };
  gw = await startGateway({ config, store, bus });
  const ops = await gw.app.listenOps(0, '127.0.0.1');
  opsUrl = `http://127.0.0.1:${ops.port}`;
});

afterAll(async () => {
  redis?.resume();
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

async function timedReadyz() {
  const started = performance.now();
  const res = await send(opsUrl, '/readyz');
  return { res, ms: performance.now() - started };
}

it('/readyz answers 503 "key store not answering" inside the 1 s probe timeout while Redis hangs, one ping at a time, and 200 once it answers again', async () => {
  expect((await send(opsUrl, '/readyz')).status).toBe(200);
  redis.pause(); // SIGSTOP: the connection stays open, nothing answers
  onTestFinished(() => redis.resume());

  // Several probes in a row and ten at once: each answers in time.
  for (let i = 0; i < 3; i++) {
    const { res, ms } = await timedReadyz();
    expect(ms).toBeLessThan(PROBE_TIMEOUT_MS);
    expect(res.status).toBe(503);
    expect(res.json).toEqual({ status: 'not ready', reason: 'key store not answering' });
  }
  const burst = await Promise.all(Array.from({ length: 10 }, () => timedReadyz()));
  for (const { res, ms } of burst) {
    expect(res.status).toBe(503);
    expect(ms).toBeLessThan(PROBE_TIMEOUT_MS);
  }
  // Thirteen probes plus the periodic store check shared one ping at a time.
  expect(pings.max).toBe(1);
  const m = await send(opsUrl, '/metrics');
  expect(m.text).toMatch(/^keygate_store_up 0$/m);

  redis.resume();
  const deadline = performance.now() + 5000;
  for (;;) {
    const res = await send(opsUrl, '/readyz');
    if (res.status === 200) break;
    if (performance.now() > deadline)
      throw new Error('/readyz did not return to 200 after Redis resumed');
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(pings.max).toBe(1);
  expect(pings.total).toBeGreaterThan(1);
});
