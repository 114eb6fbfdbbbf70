import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { rawHttp } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  gw = await startGateway({
    config: testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: redis.url } },
      log: { level: 'trace' },
    }),
  });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

it('keys planted in the path, the query string and headers appear in no log line (at trace level)', async () => {
  const { key, id } = await gw.issue('planted', 'reader');
  const secret = key.slice(3 + 12 + 1); // secret + checksum
  const requests = [
    `GET /model/allocation/${key} HTTP/1.1\r\nHost: t\r\nX-API-KEY: ${key}`,
    `GET /model/allocation?window=1d&api_key=${key} HTTP/1.1\r\nHost: t\r\nX-API-KEY: ${key}`,
    `GET /model/allocation HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${key}\r\nX-Debug: ${key}\r\nCookie: k=${key}\r\nReferer: https://x/?k=${key}`,
    `GET /model/allocation HTTP/1.1\r\nHost: t\r\nAuthorization: Basic ${Buffer.from(`${key}:`).toString('base64')}\r\nUser-Agent: ci ${key}`,
    `GET /model/${key}/x HTTP/1.1\r\nHost: t`,
    `GET /model/allocation HTTP/1.1\r\nHost: t\r\nX-API-KEY: ${key}x`,
    `GET /_keygate/v1/service-accounts/${key} HTTP/1.1\r\nHost: t\r\nX-API-KEY: ${key}`,
    `GET /model/allocation HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${key}`,
  ];
  const statuses: number[] = [];
  for (const head of requests) {
    statuses.push((await rawHttp(gw.port, `${head}\r\nConnection: close`)).status);
  }
  // Keys in the URL or in a forwarded header are refused before anything else; only the last,
  // clean request (and the one with a non-key "…x" in X-API-KEY, refused as invalid) differ.
  expect(statuses).toEqual([400, 400, 400, 400, 400, 401, 400, 200]);
  await gw.logs.waitForAccess(requests.length);
  expect(gw.logs.raw.length).toBeGreaterThanOrEqual(requests.length);
  for (const line of gw.logs.raw) {
    expect(line).not.toContain(key);
    expect(line).not.toContain(secret);
  }
  // The key id (public) is what identifies the key in the logs.
  expect(gw.logs.access().some((l) => l.key_id === id)).toBe(true);
});
