import { connect } from 'node:net';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { type ServeProcess, spawnServe, writeTempConfig } from '../helpers/cli.js';
import { mintKey, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let redis: RedisServer;
let upstream: RecordingUpstream;
let configPath: string;
let key: string;

beforeAll(async () => {
  redis = await RedisServer.start({ persistent: true });
  upstream = await RecordingUpstream.start();
  upstream.on('/slow', async (_req, res) => {
    await new Promise((r) => setTimeout(r, 1500));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"code":200,"data":"slow but complete"}');
  });
  const settings = { store: { type: 'redis', redis: { url: redis.url } } };
  configPath = writeTempConfig({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstream.url, stripPrefix: '/model' },
    routes: TEST_ROUTES,
    ...settings,
  });
  key = (await mintKey(testConfig(upstream.url, settings), 'ops', 'reader')).key;
});

afterAll(async () => {
  await upstream?.close();
  await redis?.destroy();
});

async function timeUntil(url: string, status: number, limitMs: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    const res = await send(url, '/readyz').catch(() => ({ status: 0 }));
    if (res.status === status) return performance.now() - started;
    if (performance.now() - started > limitMs)
      throw new Error(`/readyz did not turn ${status} within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('readiness follows Redis', () => {
  let serve: ServeProcess;
  beforeAll(async () => {
    serve = await spawnServe(configPath);
  });
  afterAll(() => serve?.stop('SIGKILL'));

  it('/readyz turns 503 within 2 s of Redis stopping and 200 within 2 s of its return; /healthz stays 200', async () => {
    expect((await send(serve.opsUrl, '/readyz')).status).toBe(200);
    await redis.stop();
    const down = await timeUntil(serve.opsUrl, 503, 2000);
    expect((await send(serve.opsUrl, '/readyz')).json).toEqual({
      status: 'not ready',
      reason: 'key store unreachable',
    });
    expect((await send(serve.opsUrl, '/healthz')).status).toBe(200); // alive: no restart for a Redis outage
    await redis.start();
    const up = await timeUntil(serve.opsUrl, 200, 2000);
    console.log(
      `/readyz: 503 ${down.toFixed(0)} ms after Redis stopped, 200 ${up.toFixed(0)} ms after it returned`,
    );
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM with 50 slow requests in flight: all complete with 200, new connections are refused, exit 0', async () => {
    const serve = await spawnServe(configPath);
    onTestFinished(async () => {
      await serve.stop('SIGKILL');
    });
    upstream.reset();
    const pool = new Pool(serve.url, { connections: 50, pipelining: 1 });
    onTestFinished(async () => {
      if (!pool.closed) await pool.destroy();
    });
    const inflight = Array.from({ length: 50 }, async () => {
      const res = await pool.request({
        method: 'GET',
        path: '/model/slow',
        headers: { 'x-api-key': key },
      });
      const body = await res.body.text();
      return { status: res.statusCode, body };
    });
    // Wait until all 50 have reached the upstream: they are truly in flight.
    const deadline = Date.now() + 10_000;
    while (upstream.requests.length < 50 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(upstream.requests).toHaveLength(50);

    const exited = serve.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    // Not ready while draining, so the load balancer stops sending.
    expect((await send(serve.opsUrl, '/readyz')).status).toBe(503);
    // The listener no longer accepts.
    const refused = await new Promise<string>((resolve) => {
      const socket = connect(serve.port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');

    const results = await Promise.all(inflight);
    // The client closes its idle keep-alive connections, as a load balancer would.
    await pool.close();
    expect(results.every((r) => r.status === 200 && r.body.includes('slow but complete'))).toBe(
      true,
    );
    expect(await exited).toBe(0);
    const lines = serve.output().trim().split('\n');
    const last = JSON.parse(lines.at(-1) as string) as Record<string, unknown>;
    expect(last).toMatchObject({ drained: 50, timed_out: false });
    expect(last.msg).toContain('drained 50 in-flight requests');
  });

  it('a second signal exits at once', async () => {
    const serve = await spawnServe(configPath);
    onTestFinished(async () => {
      await serve.stop('SIGKILL');
    });
    upstream.reset();
    const pending = send(serve.url, '/model/slow', { headers: { 'x-api-key': key } }).catch(
      () => undefined,
    );
    while (!upstream.requests.some((r) => r.url === '/slow'))
      await new Promise((r) => setTimeout(r, 10));
    // The first signal starts a drain that would wait ~1.5 s for this request...
    serve.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    expect((await send(serve.opsUrl, '/readyz')).json.reason).toBe('draining');
    // ...the second one does not wait.
    const started = performance.now();
    const code = await serve.stop('SIGTERM');
    expect(code).toBe(1);
    expect(performance.now() - started).toBeLessThan(1000);
    await pending;
  });
});
