import { afterAll, beforeAll, expect, it } from 'vitest';
import { runCli, writeTempConfig } from '../helpers/cli.js';
import { type Gateway, startGateway, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { parsePrometheusText, series } from '../helpers/prom-text.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

const DAY = 86_400;
let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
let opsUrl: string;
let configPath: string;
const ids: Record<string, string> = Object.create(null);

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  const store = { type: 'redis', redis: { url: redis.url } };
  gw = await startGateway({ config: testConfig(upstream.url, { store }) });
  opsUrl = `http://127.0.0.1:${(await gw.app.listenOps(0, '127.0.0.1')).port}`;
  configPath = writeTempConfig({
    upstream: { url: upstream.url },
    store,
    routes: TEST_ROUTES,
    keys: { argon2: { memoryCost: 4096, timeCost: 1 } },
  });
  const now = Math.floor(Date.now() / 1000);
  const used = await gw.issue('nightly', 'reader', { expiresAt: now + 3 * DAY });
  const idle = await gw.issue('nightly', 'reader', { expiresAt: now + 2 * DAY });
  const later = await gw.issue('dash', 'reader', { expiresAt: now + 30 * DAY });
  const revoked = await gw.issue('dash', 'reader', { expiresAt: now + DAY });
  await gw.app.keys.revokeKey({ kind: 'cli', user: 'test' }, 'dash', revoked.id);
  ids.used = used.id;
  ids.idle = idle.id;
  ids.later = later.id;
  ids.revoked = revoked.id;
  const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': used.key } });
  expect(res.status).toBe(200);
  await gw.app.lastUsed.flush();
  await gw.app.keyExpiry.refresh();
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.stop();
});

it('a /metrics scrape on real Redis counts the used and the idle key apart, per account only', async () => {
  const text = (await send(opsUrl, '/metrics')).text;
  const m = parsePrometheusText(text);
  const at = (account: string, within: string, inUse: string) =>
    m.get(series('keygate_keys_expiring', { account, within, in_use: inUse }));
  expect(at('nightly', '7d', 'true')).toBe(1);
  expect(at('nightly', '7d', 'false')).toBe(1);
  expect(at('nightly', '1d', 'true')).toBeUndefined();
  expect(text).not.toMatch(/^keygate_keys_expiring\{account="dash"/m);
  for (const id of Object.values(ids)) expect(text).not.toContain(id);
});

it('keygate keys list --expiring 7d lists the expiring keys of every account, soonest first', async () => {
  const res = await runCli(['keys', 'list', '--expiring', '7d', '--config', configPath]);
  expect(res.code, res.stderr).toBe(0);
  const lines = res.stdout.trim().split('\n');
  expect(lines[0]).toMatch(
    /^ACCOUNT\s+ID\s+STATUS\s+DESCRIPTION\s+SCOPES\s+CREATED\s+EXPIRES\s+LAST USED\s+REQUESTS$/,
  );
  expect(lines).toHaveLength(3);
  expect(lines[1]).toContain(ids.idle);
  expect(lines[2]).toContain(ids.used);
  expect(res.stdout).not.toContain(ids.later);
  expect(res.stdout).not.toContain(ids.revoked);
});

it('--expiring with --json, and with an account (one account, 30d reaches the later key)', async () => {
  const json = await runCli(['keys', 'list', '--expiring', '7d', '--json', '--config', configPath]);
  expect(json.code, json.stderr).toBe(0);
  const items = (JSON.parse(json.stdout) as { items: Array<{ id: string; account: string }> })
    .items;
  expect(items.map((i) => [i.account, i.id])).toEqual([
    ['nightly', ids.idle],
    ['nightly', ids.used],
  ]);
  const dash = await runCli([
    'keys',
    'list',
    'dash',
    '--expiring',
    '30d',
    '--json',
    '--config',
    configPath,
  ]);
  expect(dash.code, dash.stderr).toBe(0);
  expect(
    (JSON.parse(dash.stdout) as { items: Array<{ id: string }> }).items.map((i) => i.id),
  ).toEqual([ids.later]);
  const missing = await runCli([
    'keys',
    'list',
    'nobody',
    '--expiring',
    '7d',
    '--config',
    configPath,
  ]);
  expect(missing.code).toBe(1); // as `keys list nobody`
});

it.each([['soon'], ['-1d'], ['0'], ['7 d'], ['']])(
  'keys list --expiring %j → exit 2 naming --expiring',
  async (value) => {
    const res = await runCli(['keys', 'list', `--expiring=${value}`, '--config', configPath]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('--expiring');
  },
);

it('keys list without an account and without --expiring is still bad usage (exit 2)', async () => {
  const res = await runCli(['keys', 'list', '--config', configPath]);
  expect(res.code).toBe(2);
});
