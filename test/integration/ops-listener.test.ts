import { mkdtempSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createApp } from '../../src/app.js';
import { ConfigError } from '../../src/config/load.js';
import { LocalInvalidationBus } from '../../src/store/invalidation-bus.js';
import { runCli, spawnServe, writeTempConfig } from '../helpers/cli.js';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { rawHttp, send } from '../helpers/http.js';
import { MemoryKeyStore } from '../helpers/memory-key-store.js';
import { RecordingUpstream } from '../helpers/upstream.js';

const TOKEN = 'mt_3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'keygate-ops-'));
}

function tokenFile(content: string): string {
  const path = join(tempDir(), 'metrics-token');
  writeFileSync(path, content);
  return path;
}

let upstream: RecordingUpstream;

beforeAll(async () => {
  upstream = await RecordingUpstream.start();
});

afterAll(async () => {
  await upstream?.close();
});

async function gatewayWith(ops: Record<string, unknown>): Promise<{ gw: Gateway; ops: string }> {
  const gw = await startGateway({
    config: testConfig(upstream.url, {
      store: { type: 'file', file: { path: join(tempDir(), 'keys.json') } },
      ops,
    }),
  });
  onTestFinished(() => gw.close());
  const address = await gw.app.listenOps(0);
  return { gw, ops: `http://127.0.0.1:${address.port}` };
}

describe('ops listener: bind address', () => {
  it('binds to loopback unless told otherwise (keygate serve, default config)', async () => {
    const dir = tempDir();
    const config = writeTempConfig({
      listen: { host: '127.0.0.1', port: 0 },
      upstream: { url: upstream.url },
      store: { type: 'file', file: { path: join(dir, 'keys.json') } },
    });
    const serve = await spawnServe(config);
    onTestFinished(async () => {
      await serve.stop('SIGTERM');
    });
    expect(serve.output()).toMatch(/"ops":"127\.0\.0\.1:\d+"/);
    const opsPort = Number(new URL(serve.opsUrl).port);
    expect((await send(serve.opsUrl, '/healthz')).status).toBe(200);
    // Not reachable on any other address of this machine.
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal);
    if (external) {
      await expect(send(`http://${external.address}:${opsPort}`, '/metrics')).rejects.toThrow();
    }
  });

  it('in-process: listenOps without a host uses ops.host, 127.0.0.1 by default', async () => {
    const gw = await startGateway({
      config: testConfig(upstream.url, {
        store: { type: 'file', file: { path: join(tempDir(), 'keys.json') } },
      }),
    });
    onTestFinished(() => gw.close());
    expect(gw.app.opsServer.listening).toBe(false);
    const address = await gw.app.listenOps(0);
    expect(address.address).toBe('127.0.0.1');
  });
});

describe('ops listener: /metrics with ops.metricsTokenFile', () => {
  it('refuses /metrics without, or with a wrong, token; serves it with the right one', async () => {
    const { gw, ops } = await gatewayWith({ metricsTokenFile: tokenFile(`${TOKEN}\n`) });

    const none = await send(ops, '/metrics');
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ code: 401, error: 'missing_credentials' });
    expect(none.headers['www-authenticate']).toContain('Bearer');
    expect(none.text).not.toContain('keygate_');

    for (const wrong of [
      `Bearer ${TOKEN.slice(0, -1)}x`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Bearer ${TOKEN}x`,
      'Bearer ',
      `Basic ${Buffer.from(`prometheus:${TOKEN}`).toString('base64')}`,
      TOKEN,
      `Bearer ${TOKEN} extra`,
    ]) {
      const res = await send(ops, '/metrics', { headers: { authorization: wrong } });
      expect(res.status, wrong).toBe(401);
      // An Authorization header is there, so the token is wrong, not missing.
      expect(res.json.error, wrong).toBe('invalid_key');
      expect(res.text).not.toContain('keygate_');
      expect(res.text).not.toContain(TOKEN);
    }

    const head = await send(ops, '/metrics', { method: 'HEAD' });
    expect(head.status).toBe(401);

    for (const right of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BEARER  ${TOKEN} `]) {
      const ok = await send(ops, '/metrics', { headers: { authorization: right } });
      expect(ok.status, right).toBe(200);
      expect(ok.text).toContain('keygate_');
    }
    expect(JSON.stringify(gw.logs.lines)).not.toContain(TOKEN);
  });

  it('two Authorization headers are refused, even if one carries the token', async () => {
    const { ops } = await gatewayWith({ metricsTokenFile: tokenFile(TOKEN) });
    const port = Number(new URL(ops).port);
    const res = await rawHttp(
      port,
      `GET /metrics HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\nauthorization: Bearer nope\r\nconnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(400);
    expect(res.text).not.toContain('keygate_');
  });

  it('/healthz and /readyz stay open (probes carry no credentials)', async () => {
    const { ops } = await gatewayWith({ metricsTokenFile: tokenFile(TOKEN) });
    expect((await send(ops, '/healthz')).status).toBe(200);
    const ready = await send(ops, '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.text).not.toContain('keygate_');
  });

  it('without ops.metricsTokenFile, /metrics is served as before (loopback bind is the guard)', async () => {
    const { ops } = await gatewayWith({});
    const res = await send(ops, '/metrics');
    expect(res.status).toBe(200);
    expect(res.text).toContain('keygate_');
  });

  it('a missing or empty token file stops start-up with a config error naming ops.metricsTokenFile', async () => {
    for (const file of ['/nonexistent/metrics-token', tokenFile('\n')]) {
      const parsed = testConfig(upstream.url, { ops: { metricsTokenFile: file } });
      expect(() =>
        createApp({ config: parsed, store: new MemoryKeyStore(), bus: new LocalInvalidationBus() }),
      ).toThrow(ConfigError);
      const config = writeTempConfig({
        listen: { host: '127.0.0.1', port: 0 },
        upstream: { url: upstream.url },
        store: { type: 'file', file: { path: join(tempDir(), 'keys.json') } },
        ops: { metricsTokenFile: file },
      });
      const result = await runCli(['serve', '--config', config], { KEYGATE_OPS_PORT: '0' });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('ops.metricsTokenFile');
    }
  });
});
