import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rssOf, type ServeProcess, spawnServe, writeTempConfig } from '../helpers/cli.js';
import {
  type Gateway,
  mintKey,
  startGateway,
  TEST_ROUTES,
  testConfig,
} from '../helpers/gateway.js';
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

describe('large bodies stream through a separate keygate process', () => {
  const SIZE = 50 * 1024 * 1024;
  const CHUNK = Buffer.alloc(256 * 1024, 'k');
  let serve: ServeProcess;
  let key: string;

  beforeAll(async () => {
    upstream.onStream('/download', (req, res) => {
      const size = Number(new URL(req.url ?? '', 'http://x').searchParams.get('bytes') ?? SIZE);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      let sent = 0;
      const pump = () => {
        while (sent < size) {
          sent += CHUNK.length;
          if (!res.write(CHUNK)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    upstream.onStream('/upload', (req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => res.end(JSON.stringify({ bytes })));
    });
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      upstream: { url: upstream.url, stripPrefix: '/model' },
      store: { type: 'redis', redis: { url: redis.url } },
      routes: TEST_ROUTES,
      log: { level: 'info' },
    };
    const path = writeTempConfig(config);
    const loaded = testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: redis.url } },
    });
    key = (await mintKey(loaded, 'bulk', 'member')).key;
    serve = await spawnServe(path);
  });
  afterAll(async () => {
    await serve?.stop('SIGKILL');
  });

  /** Downloads and uploads `size` bytes through keygate; returns the proxy's peak RSS seen meanwhile. */
  async function transfer(size: number): Promise<number> {
    let peak = await rssOf(serve.pid);
    const down = await request(`${serve.url}/model/download?bytes=${size}`, {
      headers: { 'x-api-key': key },
    });
    expect(down.statusCode).toBe(200);
    let received = 0;
    let sampledAt = 0;
    for await (const chunk of down.body) {
      received += (chunk as Buffer).length;
      if (received - sampledAt >= 4 * 1024 * 1024) {
        sampledAt = received;
        peak = Math.max(peak, await rssOf(serve.pid));
      }
    }
    expect(received).toBe(size);

    let produced = 0;
    const body = new Readable({
      read() {
        if (produced >= size) return void this.push(null);
        produced += CHUNK.length;
        this.push(CHUNK);
      },
    });
    const up = await request(`${serve.url}/model/upload`, {
      method: 'PUT',
      headers: { 'x-api-key': key, 'content-type': 'application/octet-stream' },
      body,
    });
    const answer = (await up.body.json()) as { bytes: number };
    expect(up.statusCode).toBe(200);
    expect(answer.bytes).toBe(size);
    return Math.max(peak, await rssOf(serve.pid));
  }

  it('50 MB download and 50 MB upload stream: once warm, proxy RSS grows < 20 MB per round (first-round heap sizing printed)', async () => {
    for (let i = 0; i < 5; i++) {
      const warm = await send(serve.url, '/model/allocation', { headers: { 'x-api-key': key } });
      expect(warm.status).toBe(200);
    }
    // The first transfers size V8's heap for this traffic (young generation, chunk garbage that
    // RSS keeps after GC): +50 to +90 MB once, then flat. That one-off cost is printed, not judged.
    // Judged is the steady state: a proxy that buffered bodies would grow by at least 50 MB on
    // every round, the third included; a streaming one stays flat.
    const mb = (n: number) => (n / 1048576).toFixed(1);
    const rounds: string[] = [];
    let growth = 0;
    for (let round = 1; round <= 3; round++) {
      const before = await rssOf(serve.pid);
      const peak = await transfer(SIZE);
      growth = peak - before;
      rounds.push(`round ${round}: ${mb(before)} → peak ${mb(peak)} MB (+${mb(growth)})`);
    }
    console.log(`proxy RSS per 50 MB download + 50 MB upload: ${rounds.join('; ')}`);
    expect(growth / 1048576).toBeLessThan(20);
  });
});
