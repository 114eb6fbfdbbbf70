import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway, TEST_ACTOR, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { freePort, RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

// The shipped Caddyfile, exactly as an operator copies it; only the three addresses are filled
// in, and Caddy's admin endpoint and automatic HTTPS are turned off for a test on loopback.
const SHIPPED = readFileSync(
  new URL('../../deploy/authz/caddy/Caddyfile', import.meta.url),
  'utf8',
);

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
let caddy: ChildProcess;
let reader: string;
let url: string;

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  gw = await startGateway({
    config: testConfig(upstream.url, {
      mode: 'authz',
      store: { type: 'redis', redis: { url: redis.url } },
      trustedProxies: ['127.0.0.1/32'],
    }),
  });
  reader = (await gw.issue('caddy-team', 'reader')).key;
  const dir = mkdtempSync(join(tmpdir(), 'keygate-caddy-'));
  const port = await freePort();
  const caddyfile = join(dir, 'Caddyfile');
  writeFileSync(
    caddyfile,
    `{\n\tadmin off\n\tauto_https off\n}\n${SHIPPED.replaceAll('KEYGATE', `127.0.0.1:${gw.port}`)
      .replaceAll('AGGREGATOR', new URL(upstream.url).host)
      .replaceAll(':LISTEN', `http://127.0.0.1:${port}`)}`,
  );
  let stderr = '';
  caddy = spawn('caddy', ['run', '--config', caddyfile, '--adapter', 'caddyfile'], {
    env: { ...process.env, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir, HOME: dir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  caddy.stderr?.on('data', (c) => {
    stderr += c;
  });
  const failed = new Promise<never>((_, reject) =>
    caddy.once('error', (err) =>
      reject(new Error(`caddy could not be started (apt-get install caddy): ${err.message}`)),
    ),
  );
  const deadline = Date.now() + 10_000;
  while (!(await Promise.race([listening(port), failed]))) {
    if (Date.now() > deadline || caddy.exitCode !== null)
      throw new Error(`caddy did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  url = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  if (caddy && caddy.exitCode === null) {
    const exited = new Promise((r) => caddy.once('exit', r));
    caddy.kill('SIGTERM');
    await exited;
  }
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

describe('Caddy forward_auth in front of the Aggregator, keygate answering (shipped Caddyfile)', () => {
  it('allowed: the Aggregator gets the request with keygate identity and without the key', async () => {
    upstream.reset();
    const res = await send(url, '/model/allocation?window=1d', {
      headers: { 'x-api-key': reader },
    });
    expect(res.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    const seen = upstream.requests[0];
    expect(seen?.url).toBe('/model/allocation?window=1d');
    expect(seen?.headers['x-keygate-account']).toBe('caddy-team');
    expect(seen?.headers['x-keygate-role']).toBe('reader');
    expect(seen?.headers['x-api-key']).toBeUndefined();
    expect(JSON.stringify(seen?.rawHeaders)).not.toContain(reader);
  });

  it('Bearer and Basic credentials are stripped too', async () => {
    upstream.reset();
    const basic = Buffer.from(`${reader}:`).toString('base64');
    for (const authorization of [`Bearer ${reader}`, `Basic ${basic}`]) {
      expect((await send(url, '/model/assets', { headers: { authorization } })).status).toBe(200);
    }
    expect(upstream.requests).toHaveLength(2);
    for (const seen of upstream.requests) {
      expect(seen.headers.authorization).toBeUndefined();
      expect(JSON.stringify(seen.rawHeaders)).not.toContain(reader);
    }
  });

  it("refused by route policy (403) and with no key (401), with keygate's JSON; the Aggregator sees nothing", async () => {
    upstream.reset();
    const scope = await send(url, '/model/etl/run', { headers: { 'x-api-key': reader } });
    expect([scope.status, scope.json.error]).toEqual([403, 'insufficient_scope']);
    const none = await send(url, '/model/allocation');
    expect([none.status, none.json.error]).toEqual([401, 'missing_credentials']);
    const wrong = await send(url, '/model/allocation', { headers: { 'x-api-key': `${reader}x` } });
    expect(wrong.status).toBe(401);
    expect(upstream.requests).toHaveLength(0);
  });

  it('forged identity headers from the client never reach the Aggregator', async () => {
    upstream.reset();
    const res = await send(url, '/model/allocation', {
      headers: {
        'x-api-key': reader,
        'X-Keygate-Account': 'root',
        'X-KEYGATE-ROLE': 'admin',
        'x-keygate-key-id': 'forged',
      },
    });
    expect(res.status).toBe(200);
    const raw = upstream.requests[0]?.rawHeaders ?? [];
    const identity = raw.filter((_, i) => i % 2 === 1 && /^x[-_]keygate/i.test(raw[i - 1] ?? ''));
    expect(identity).toHaveLength(3);
    expect(identity).toContain('caddy-team');
    expect(identity).toContain('reader');
    for (const forged of ['root', 'admin', 'forged']) expect(identity).not.toContain(forged);
  });

  it('a revoked key is refused at once', async () => {
    const issued = await gw.issue('caddy-revoked', 'reader');
    expect(
      (await send(url, '/model/allocation', { headers: { 'x-api-key': issued.key } })).status,
    ).toBe(200);
    await gw.app.keys.revokeKey(TEST_ACTOR, 'caddy-revoked', issued.id);
    const after = await send(url, '/model/allocation', { headers: { 'x-api-key': issued.key } });
    expect([after.status, after.json.error]).toEqual([401, 'revoked_key']);
  });
});
