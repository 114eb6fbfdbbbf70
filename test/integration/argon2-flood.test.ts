import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServeProcess, spawnServe, writeTempConfig } from '../helpers/cli.js';
import { flood } from '../helpers/flood-worker.mjs';
import {
  type Gateway,
  mintKey,
  startGateway,
  TEST_ROUTES,
  testConfig,
} from '../helpers/gateway.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

const FLOOD = 200;

function tally(statuses: number[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

/**
 * Starts the flood in another process and waits until it is ready; `fire()` starts the flood
 * and resolves with its statuses.
 */
async function floodProcess(url: string, victimId: string): Promise<{ fire(): Promise<number[]> }> {
  const worker = resolve(import.meta.dirname, '../helpers/flood-worker.mjs');
  const child = spawn(process.execPath, [worker, url, victimId, String(FLOOD)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  await new Promise<void>((ready) => {
    const check = () => (out.startsWith('ready\n') ? ready() : child.stdout.once('data', check));
    check();
  });
  return {
    fire: () =>
      new Promise((done) => {
        child.once('exit', () => done(JSON.parse(out.slice('ready\n'.length)) as number[]));
        child.stdin.write('go\n');
      }),
  };
}

let redis: RedisServer;
let upstream: RecordingUpstream;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
});

afterAll(async () => {
  await upstream?.close();
  await redis?.destroy();
});

describe('argon2 work is bounded', () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await startGateway({
      config: testConfig(upstream.url, {
        store: { type: 'redis', redis: { url: redis.url } },
        keys: { verifyConcurrency: 2, verifyQueue: 64 },
      }),
    });
  });
  afterAll(() => gw?.close());

  it(`${FLOOD} concurrent wrong secrets: at most 2 running + 64 queued, the rest shed with 503, none allowed`, async () => {
    const victim = await gw.issue('victim', 'reader');
    const statuses = await flood(gw.url, victim.id, FLOOD);
    const counts = tally(statuses);
    console.log(
      `flood statuses ${JSON.stringify(counts)}; argon2 runs ${gw.app.verifier.stats.argon2Calls}; ` +
        `max queue ${gw.app.pool.maxObservedQueue}/64; shed ${gw.app.pool.shed}`,
    );
    expect(Object.keys(counts).every((s) => s === '401' || s === '503')).toBe(true);
    expect(gw.app.pool.maxObservedQueue).toBeLessThanOrEqual(64);
    expect(gw.app.pool.shed).toBe(counts[503] ?? 0);
    expect(gw.app.verifier.stats.argon2Calls).toBe(counts[401]);
    expect(upstream.requests).toHaveLength(0);
  });
});

describe('a cached key stays fast during the flood (keygate and the flood each in their own process)', () => {
  let serve: ServeProcess;
  let validKey: string;
  let victimId: string;

  beforeAll(async () => {
    const settings = {
      store: { type: 'redis', redis: { url: redis.url } },
      keys: { verifyConcurrency: 2, verifyQueue: 64 },
    };
    const loaded = testConfig(upstream.url, settings);
    validKey = (await mintKey(loaded, 'dashboards', 'reader')).key;
    victimId = (await mintKey(loaded, 'target', 'reader')).id;
    serve = await spawnServe(
      writeTempConfig({
        listen: { host: '127.0.0.1', port: 0 },
        upstream: { url: upstream.url, stripPrefix: '/model' },
        routes: TEST_ROUTES,
        log: { level: 'info' },
        ...settings,
      }),
    );
  });
  afterAll(() => serve?.stop('SIGKILL'));

  it('every valid-key request answers within 50 ms while the flood runs', async () => {
    const client = new Client(serve.url);
    const call = async () => {
      const res = await client.request({
        method: 'GET',
        path: '/model/allocation',
        headers: { 'x-api-key': validKey },
      });
      await res.body.dump();
      return res.statusCode;
    };
    expect(await call()).toBe(200); // cached from here on

    const worker = await floodProcess(serve.url, victimId);
    let done = false;
    const floodStarted = performance.now();
    const flooding = worker.fire().finally(() => {
      done = true;
    });
    const latencies: number[] = [];
    const at: number[] = [];
    while (!done || latencies.length < 20) {
      const started = performance.now();
      expect(await call()).toBe(200);
      latencies.push(performance.now() - started);
      at.push(started - floodStarted);
    }
    const counts = tally(await flooding);
    await client.close();

    const sorted = [...latencies].sort((a, b) => a - b);
    const max = sorted[sorted.length - 1] as number;
    console.log(
      `separate process: flood ${JSON.stringify(counts)}; ${latencies.length} valid-key requests during it, ` +
        `p50 ${sorted[Math.floor(sorted.length / 2)]?.toFixed(2)} ms, p99 ${sorted[Math.floor(sorted.length * 0.99)]?.toFixed(2)} ms, max ${max.toFixed(2)} ms at +${at[latencies.indexOf(max)]?.toFixed(0)} ms of ${(performance.now() - floodStarted).toFixed(0)} ms`,
    );
    expect(counts[200]).toBeUndefined();
    expect(max).toBeLessThan(50);
  });
});
