import { expect, it, onTestFinished } from 'vitest';
import type { KeyRecord, KeyStore } from '../../src/store/key-store.js';
import { openStore } from '../../src/store/open-store.js';
import { adminClient } from '../helpers/admin-client.js';
import { runCli, writeTempConfig } from '../helpers/cli.js';
import { startGateway, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

const FIXED_EXPIRY = Math.floor(Date.now() / 1000) + 30 * 86_400;

/** Store state without what legitimately differs between two runs (ids, hashes, clock times). */
async function normalisedState(store: KeyStore) {
  const accounts = await store.listAccounts();
  return Promise.all(
    accounts.map(async (a) => ({
      name: a.name,
      role: a.role,
      description: a.description,
      disabled: a.disabled,
      keys: (await store.listKeys(a.name))
        .map((k: KeyRecord) => ({
          description: k.description,
          scopes: k.scopes,
          expires: k.expiresAt === 0 ? 'never' : k.expiresAt === FIXED_EXPIRY ? 'fixed' : 'grace',
          revoked: k.revokedAt > 0,
          rotated: k.replacedBy !== '',
          generation: k.generation,
        }))
        .sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
    })),
  );
}

it('the CLI and the admin API produce identical store state for the same operations', async () => {
  const redis = await RedisServer.start();
  onTestFinished(() => redis.destroy());
  const upstream = await RecordingUpstream.start();
  onTestFinished(() => upstream.close());
  const cliConfig = {
    upstream: { url: upstream.url },
    routes: TEST_ROUTES,
    store: { type: 'redis', redis: { url: `redis://127.0.0.1:${redis.port}/1` } },
  };
  const file = writeTempConfig(cliConfig);
  const cli = async (...args: string[]) => {
    const result = await runCli([...args, '--config', file]);
    expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    return result.stdout.trim();
  };
  const gw = await startGateway({
    config: testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: `redis://127.0.0.1:${redis.port}/2` } },
    }),
  });
  onTestFinished(() => gw.close());
  const api = adminClient(gw.url, (await gw.issue('root', 'admin')).key);
  const ok = async (p: Promise<{ status: number; json: Record<string, unknown> }>) => {
    const res = await p;
    expect(res.status, JSON.stringify(res.json)).toBeLessThan(300);
    return res.json;
  };

  // The same script, twice. (The API side's admin account is made like the CLI's, for parity.)
  await cli('accounts', 'create', 'root', '--role', 'admin');
  await cli('keys', 'create', 'root', '--description', 'test key for root');

  await cli('accounts', 'create', 'ci', '--role', 'member', '--description', 'CI pipelines');
  await ok(api.createAccount('ci', 'member', 'CI pipelines'));

  await cli('accounts', 'create', 'dash', '--role', 'reader');
  await ok(api.createAccount('dash', 'reader'));

  const ciKeyLine = await runCli([
    'keys',
    'create',
    'ci',
    '--description',
    'pipeline',
    '--scopes',
    'read',
    '--json',
    '--config',
    file,
  ]);
  const ciKeyId = (
    JSON.parse(ciKeyLine.stdout) as {
      id: string;
    }
  ).id;
  const apiCiKey = (await ok(
    api.createKey('ci', { description: 'pipeline', scopes: ['read'] }),
  )) as { id: string };
  // --json prints what the admin API answers: the same fields, key included.
  expect(Object.keys(JSON.parse(ciKeyLine.stdout)).sort()).toEqual(Object.keys(apiCiKey).sort());

  const dashLine = await runCli([
    'keys',
    'create',
    'dash',
    '--description',
    'grafana',
    '--expires-at',
    String(FIXED_EXPIRY),
    '--json',
    '--config',
    file,
  ]);
  const dashKeyId = (
    JSON.parse(dashLine.stdout) as {
      id: string;
    }
  ).id;
  const apiDashKey = (await ok(
    api.createKey('dash', { description: 'grafana', expires_at: FIXED_EXPIRY }),
  )) as { id: string };

  await cli('accounts', 'update', 'dash', '--role', 'member', '--description', 'dashboards');
  await ok(
    api.call('PATCH', '/service-accounts/dash', { role: 'member', description: 'dashboards' }),
  );

  await cli('keys', 'revoke', 'ci', ciKeyId);
  await ok(api.revoke('ci', apiCiKey.id));

  await cli('keys', 'rotate', 'dash', dashKeyId, '--grace', '1h');
  await ok(api.rotate('dash', apiDashKey.id, { grace_seconds: 3600 }));

  await cli('accounts', 'update', 'ci', '--disable');
  await ok(api.call('PATCH', '/service-accounts/ci', { disabled: true }));

  await cli('accounts', 'create', 'tmp', '--role', 'reader');
  await cli('keys', 'create', 'tmp', '--description', 'short-lived');
  await cli('accounts', 'delete', 'tmp');
  await ok(api.createAccount('tmp', 'reader'));
  await ok(api.createKey('tmp', { description: 'short-lived' }));
  expect((await api.call('DELETE', '/service-accounts/tmp')).status).toBe(204);

  const { store: cliStore } = await openStore(
    testConfig(upstream.url, { store: cliConfig.store }).store,
    { requireConnection: true },
  );
  onTestFinished(() => cliStore.close());
  const viaCli = await normalisedState(cliStore);
  const viaApi = await normalisedState(gw.store);
  expect(viaApi).toEqual(viaCli);
  expect(viaCli.map((a) => a.name)).toEqual(['ci', 'dash', 'root']);
  expect(viaCli.find((a) => a.name === 'dash')?.keys).toHaveLength(2);
});
