import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { adminClient } from '../helpers/admin-client.js';
import { runCli, writeTempConfig } from '../helpers/cli.js';
import { type Gateway, startGateway, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

// Usage per key: requests admitted with a key are counted per replica, off the request path,
// and added to the store every flush; replicas' counts add up; refusals are not counted.

let redis: RedisServer;
let upstream: RecordingUpstream;
let run = 0;

beforeAll(async () => {
  [redis, upstream] = await Promise.all([RedisServer.start(), RecordingUpstream.start()]);
});
afterAll(async () => {
  await upstream?.close();
  await redis?.destroy();
});

async function gateway(store: Record<string, unknown>): Promise<Gateway> {
  const gw = await startGateway({ config: testConfig(upstream.url, { store }) });
  onTestFinished(() => gw.close());
  return gw;
}

const get = (gw: Gateway, key: string, path = '/model/allocation') =>
  send(gw.url, path, { headers: { 'x-api-key': key } });

/** The key's request_count as the admin API answers it (checked against the OpenAPI document). */
async function requestCount(gw: Gateway, adminKey: string, account: string, id: string) {
  const res = await adminClient(gw.url, adminKey).listKeys(account);
  expect(res.status).toBe(200);
  const items = res.json.items as Array<{ id: string; request_count: number }>;
  return items.find((k) => k.id === id)?.request_count;
}

describe('request counts per key on Redis', () => {
  it('two replicas add up; refusals after verification are not counted; shutdown flushes', async () => {
    const store = { type: 'redis', redis: { url: redis.url, keyPrefix: `kg:u${++run}:` } };
    const a = await gateway(store);
    const b = await gateway(store);
    const admin = await a.issue('root', 'admin');
    const team = await a.issue('team', 'reader');
    expect(await requestCount(a, admin.key, 'team', team.id)).toBe(0);

    for (let i = 0; i < 3; i++) expect((await get(a, team.key)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await get(b, team.key)).status).toBe(200);
    // Verified, then refused: by scope, and for a path no route serves. Not uses of the key.
    expect((await get(a, team.key, '/model/etl/run')).status).toBe(403);
    expect((await get(b, team.key, '/model/nowhere')).status).toBe(403);
    // Not verified at all: a wrong key names no key to count.
    expect((await get(a, `${team.key.slice(0, -2)}xx`)).status).toBe(401);

    // Nothing is written on the request path: the store learns of the requests at a flush.
    expect(await requestCount(b, admin.key, 'team', team.id)).toBe(0);
    await Promise.all([a.app.keyUses.flush(), b.app.keyUses.flush()]);
    expect(await requestCount(b, admin.key, 'team', team.id)).toBe(5);

    // A clean shutdown writes what is pending (no flush here: close does it).
    for (let i = 0; i < 4; i++) expect((await get(a, team.key)).status).toBe(200);
    await a.close();
    expect(await requestCount(b, admin.key, 'team', team.id)).toBe(9);
  });

  it('the admin API answers count as uses of the key that asked', async () => {
    const store = { type: 'redis', redis: { url: redis.url, keyPrefix: `kg:u${++run}:` } };
    const gw = await gateway(store);
    const admin = await gw.issue('root', 'admin');
    await requestCount(gw, admin.key, 'root', admin.id);
    await requestCount(gw, admin.key, 'root', admin.id);
    await gw.app.keyUses.flush();
    // The two reads above; the third is answered before it is flushed.
    expect(await requestCount(gw, admin.key, 'root', admin.id)).toBe(2);
  });

  it('the remote CLI shows the count: keys list (REQUESTS), --json, accounts show', async () => {
    const store = { type: 'redis', redis: { url: redis.url, keyPrefix: `kg:u${++run}:` } };
    const gw = await gateway(store);
    const admin = await gw.issue('root', 'admin');
    const team = await gw.issue('team', 'reader');
    for (let i = 0; i < 12; i++) expect((await get(gw, team.key)).status).toBe(200);
    await gw.app.keyUses.flush();
    const remote = (...args: string[]) =>
      runCli([...args, '--url', gw.url, '--api-key', admin.key], {
        KEYGATE_CONFIG: '/nonexistent',
      });

    const json = await remote('keys', 'list', 'team', '--json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).items).toMatchObject([{ id: team.id, request_count: 12 }]);
    for (const args of [
      ['keys', 'list', 'team'],
      ['accounts', 'show', 'team'],
    ]) {
      const res = await remote(...args);
      expect(res.code).toBe(0);
      const lines = res.stdout.trimEnd().split('\n');
      const header = lines.findIndex((l) => l.startsWith('ID '));
      expect(lines[header]).toMatch(/\sLAST USED\s+REQUESTS$/);
      expect(lines[header + 1]).toMatch(new RegExp(`^${team.id}\\s.*\\s12$`));
    }
  });
});

describe('request counts per key on the file store', () => {
  it('counts requests through a real gateway, kept across a restart, shown by the local CLI', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-uses-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const store = { type: 'file', file: { path: join(dir, 'keygate.json') } };
    const first = await gateway(store);
    const team = await first.issue('team', 'reader');
    for (let i = 0; i < 7; i++) expect((await get(first, team.key)).status).toBe(200);
    await first.app.keyUses.flush();
    for (let i = 0; i < 3; i++) expect((await get(first, team.key)).status).toBe(200);
    await first.close(); // writes the last 3

    const config = writeTempConfig({
      upstream: { url: upstream.url },
      store,
      routes: TEST_ROUTES,
    });
    const list = await runCli(['keys', 'list', 'team', '--config', config]);
    expect(list.code).toBe(0);
    const [header, row] = list.stdout.trimEnd().split('\n');
    expect(header).toMatch(/\sREQUESTS$/);
    expect(row).toMatch(new RegExp(`^${team.id}\\s.*\\s10$`));
    const json = await runCli(['keys', 'list', 'team', '--json', '--config', config]);
    expect(JSON.parse(json.stdout).items).toMatchObject([{ id: team.id, request_count: 10 }]);

    // A restarted gateway adds to what the file holds.
    const second = await gateway(store);
    expect((await get(second, team.key)).status).toBe(200);
    await second.app.keyUses.flush();
    expect((await second.store.getKey(team.id))?.requestCount).toBe(11);
  });
});

describe('request counts per key in authz mode', () => {
  it('an allowed decision counts, a denied one does not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-uses-authz-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const config = parseConfig(
      stringify({
        mode: 'authz',
        listen: { host: '127.0.0.1', port: 0 },
        store: { type: 'file', file: { path: join(dir, 'keys.json') } },
        routes: TEST_ROUTES,
        log: { level: 'info' },
      }),
      'authz-uses',
    );
    const gw = await startGateway({ config });
    onTestFinished(() => gw.close());
    const dash = await gw.issue('dash', 'reader');
    // The data plane's endpoint, not the admin API: asked directly, not through `send`.
    const ask = async (target: string) => {
      const res = await request(`${gw.url}/_keygate/authz${target}`, {
        headers: { 'x-api-key': dash.key },
      });
      await res.body.dump();
      return res.statusCode;
    };
    expect(await ask('/model/allocation')).toBe(200);
    expect(await ask('/model/etl/run')).toBe(403);
    await gw.app.keyUses.flush();
    expect((await gw.store.getKey(dash.id))?.requestCount).toBe(1);
  });
});
