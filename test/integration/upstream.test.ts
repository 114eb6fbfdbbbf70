import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { freePort, RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let redis: RedisServer;
let upstream: RecordingUpstream;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  upstream.on('/slow', async (_req, res) => {
    await new Promise((r) => setTimeout(r, 3000));
    res.end('late');
  });
});

afterAll(async () => {
  await upstream?.close();
  await redis?.destroy();
});

describe('upstream failures', () => {
  let gw: Gateway;
  let deadGw: Gateway;
  let key: string;

  beforeAll(async () => {
    gw = await startGateway({
      config: testConfig(upstream.url, {
        store: { type: 'redis', redis: { url: redis.url } },
        upstream: { timeout: '500ms' },
      }),
    });
    key = (await gw.issue('timeouts', 'reader')).key;
    // An upstream port nobody listens on.
    deadGw = await startGateway({
      config: testConfig(`http://127.0.0.1:${await freePort()}`, {
        store: { type: 'redis', redis: { url: redis.url } },
      }),
    });
  });
  afterAll(async () => {
    await gw?.close();
    await deadGw?.close();
  });

  it('upstream down → 502 upstream_unavailable with the JSON error body', async () => {
    const res = await send(deadGw.url, '/model/allocation', { headers: { 'x-api-key': key } });
    expect(res.status).toBe(502);
    expect(res.json).toMatchObject({ code: 502, error: 'upstream_unavailable' });
    expect(res.headers['content-type']).toBe('application/json');
  });

  it('upstream slower than the timeout → 504 upstream_timeout', async () => {
    const started = performance.now();
    const res = await send(gw.url, '/model/slow', { headers: { 'x-api-key': key } });
    expect(res.status).toBe(504);
    expect(res.json).toMatchObject({ code: 504, error: 'upstream_timeout' });
    expect(performance.now() - started).toBeLessThan(2500);
  });
});

// Large bodies streaming both ways, with keygate's own buffer measured in bytes, are in
// bounded-buffering.test.ts.
