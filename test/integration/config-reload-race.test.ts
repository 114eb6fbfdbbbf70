import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RecordingUpstream } from '../helpers/upstream.js';

/**
 * Reloads while requests hammer keygate: no request may get a 500, and none that starts after
 * a reload removing a route resolved, and ends before the next reload, may be allowed on it.
 * In-process (app.reload is what SIGHUP and the watcher call), so each reload's moment is
 * known exactly.
 */
let upstream: RecordingUpstream;
let gw: Gateway;
let key: string;
let release: (() => void) | undefined;

const store = {
  type: 'file',
  file: { path: join(mkdtempSync(join(tmpdir(), 'kg-race-')), 'k.json') },
};
const WITH = () => testConfig(upstream.url, { store });
const WITHOUT = () =>
  testConfig(upstream.url, { store, routes: TEST_ROUTES.filter((r) => r.name !== 'assets') });

beforeAll(async () => {
  upstream = await RecordingUpstream.start();
  upstream.on('/slow', async (_req, res) => {
    await new Promise<void>((r) => {
      release = r;
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"slow":true}');
  });
  gw = await startGateway({ config: WITH() });
  key = (await gw.issue('ops', 'reader')).key;
});

afterAll(async () => {
  release?.();
  await gw?.close();
  await upstream?.close();
});

describe('reload races', () => {
  it('requests hammering during 40 reloads: never a 500, never an allow for the route while it is removed', async () => {
    const pool = new Pool(gw.url, { connections: 16, pipelining: 1 });
    // Odd generations have "assets" removed; a reload bumps the generation once applied.
    let generation = 0;
    let stop = false;
    const outcomes: Array<{ before: number; after: number; status: number }> = [];
    const worker = async () => {
      while (!stop) {
        const before = generation;
        const res = await pool.request({
          method: 'GET',
          path: '/model/assets',
          headers: { 'x-api-key': key },
        });
        await res.body.dump();
        outcomes.push({ before, after: generation, status: res.statusCode });
      }
    };
    const workers = Array.from({ length: 12 }, worker);
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 5));
      const plan = gw.app.reload(generation % 2 === 0 ? WITHOUT() : WITH());
      expect(plan.problems).toEqual([]);
      generation++;
    }
    await new Promise((r) => setTimeout(r, 20));
    stop = true;
    await Promise.all(workers);
    await pool.close();
    expect(outcomes.length).toBeGreaterThan(40);
    expect(outcomes.filter((o) => o.status >= 500)).toEqual([]);
    expect(new Set(outcomes.map((o) => o.status))).toEqual(new Set([200, 403]));
    // Sent after a removal was applied and answered before the next reload: must be refused.
    const removedThroughout = outcomes.filter((o) => o.before === o.after && o.before % 2 === 1);
    expect(removedThroughout.length).toBeGreaterThan(0);
    expect(removedThroughout.filter((o) => o.status !== 403)).toEqual([]);
    const presentThroughout = outcomes.filter((o) => o.before === o.after && o.before % 2 === 0);
    expect(presentThroughout.filter((o) => o.status !== 200)).toEqual([]);
    // Back to the file with the route: it works again.
    gw.app.reload(WITH());
    expect((await send(gw.url, '/model/assets', { headers: { 'x-api-key': key } })).status).toBe(
      200,
    );
  });

  it('a request in flight when its route is removed finishes under the policy it started with', async () => {
    gw.app.reload(WITH());
    upstream.reset();
    const slow = send(gw.url, '/model/slow', { headers: { 'x-api-key': key } });
    const deadline = Date.now() + 5000;
    while (upstream.requests.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    gw.app.reload(
      testConfig(upstream.url, { store, routes: TEST_ROUTES.filter((r) => r.name !== 'slow') }),
    );
    const after = await send(gw.url, '/model/slow', { headers: { 'x-api-key': key } });
    expect(after.status).toBe(403);
    release?.();
    expect((await slow).status).toBe(200);
  });

  it('maxInflightPerAccount lowered by a reload: held slots count, new requests beyond it get 429', async () => {
    gw.app.reload(WITH());
    upstream.reset();
    const slow = send(gw.url, '/model/slow', { headers: { 'x-api-key': key } });
    const deadline = Date.now() + 5000;
    while (upstream.requests.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    gw.app.reload(testConfig(upstream.url, { store, listen: { maxInflightPerAccount: 1 } }));
    const refused = await send(gw.url, '/model/assets', { headers: { 'x-api-key': key } });
    expect(refused.status).toBe(429);
    expect(refused.json.error).toBe('too_many_inflight');
    release?.();
    expect((await slow).status).toBe(200);
    expect((await send(gw.url, '/model/assets', { headers: { 'x-api-key': key } })).status).toBe(
      200,
    );
  });
});
