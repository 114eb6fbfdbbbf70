import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin-client.js';
import { type CliResult, runCli, writeTempConfig } from '../helpers/cli.js';
import { type Gateway, startGateway, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

// Cheap argon2: this file spawns CLIs; the flood and credential tests use the defaults.
const ARGON2 = { memoryCost: 4096, timeCost: 1 };
const TEAM_A = 'namespace:"team-a"';

let redis: RedisServer;
let upstream: RecordingUpstream;
let a: Gateway;
let b: Gateway;
let admin: ReturnType<typeof adminClient>;
let adminKey: string;
let localConfig: string;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  // Two replicas on one Redis, each with its own store connection and invalidation bus, and a
  // verdict cache long enough that only an invalidation can make B forget one.
  const store = { type: 'redis', redis: { url: redis.url } };
  const config = testConfig(upstream.url, {
    store,
    keys: { argon2: ARGON2, cacheTtl: '60s' },
  });
  [a, b] = await Promise.all([startGateway({ config }), startGateway({ config })]);
  adminKey = (await a.issue('root', 'admin')).key;
  admin = adminClient(a.url, adminKey);
  localConfig = writeTempConfig({
    upstream: { url: upstream.url },
    routes: TEST_ROUTES,
    store,
    keys: { argon2: ARGON2 },
  });
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await upstream?.close();
  await redis?.destroy();
});

const patch = (name: string, body: unknown) =>
  admin.call('PATCH', `/service-accounts/${name}`, body);
const create = (body: unknown) => admin.call('POST', '/service-accounts', body);

describe('filters through the admin API', () => {
  it('POST sets them, GET always shows them ({} when none), PATCH replaces the whole set, {} clears', async () => {
    const made = await create({
      name: 'team-a',
      role: 'reader',
      filters: { allocation: TEAM_A, assets: 'label[team]:"a"' },
    });
    expect(made.status, made.text).toBe(201);
    expect(made.json.filters).toEqual({ allocation: TEAM_A, assets: 'label[team]:"a"' });
    const plain = await create({ name: 'plain', role: 'reader' });
    expect(plain.json.filters).toEqual({});

    const shown = await admin.call('GET', '/service-accounts/team-a');
    expect(shown.json.filters).toEqual({ allocation: TEAM_A, assets: 'label[team]:"a"' });
    const listed = await admin.call('GET', '/service-accounts');
    const byName = new Map(
      (listed.json.items as Array<{ name: string; filters: unknown }>).map((i) => [i.name, i]),
    );
    expect(byName.get('plain')?.filters).toEqual({});
    expect(byName.get('root')?.filters).toEqual({});

    const replaced = await patch('team-a', { filters: { cloudCost: 'provider:"aws"' } });
    expect(replaced.status, replaced.text).toBe(200);
    expect(replaced.json.filters).toEqual({ cloudCost: 'provider:"aws"' });
    // Other fields leave them alone.
    expect((await patch('team-a', { description: 'x' })).json.filters).toEqual({
      cloudCost: 'provider:"aws"',
    });
    const cleared = await patch('team-a', { filters: {} });
    expect(cleared.json.filters).toEqual({});
    expect((await admin.call('GET', '/service-accounts/team-a')).json.filters).toEqual({});
  });

  it.each<[string, string, RegExp]>([
    ['an unknown kind', '{"filters": {"cost": "a:\\"b\\""}}', /^filters\.cost: unknown field/],
    ['odd case', '{"filters": {"Allocation": "a:\\"b\\""}}', /^filters\.Allocation: unknown/],
    ['__proto__ as a kind', '{"filters": {"__proto__": "a:\\"b\\""}}', /^filters\.__proto__: /],
    ['constructor', '{"filters": {"constructor": "a:\\"b\\""}}', /^filters\.constructor: /],
    ['a duplicate kind', '{"filters": {"assets": "a:\\"b\\"", "assets": "c:\\"d\\""}}', /dupl/],
    ['a number', '{"filters": {"assets": 1}}', /^filters\.assets: /],
    ['null filters', '{"filters": null}', /^filters: /],
    [
      'an invalid expression',
      '{"filters": {"allocation": "(namespace:\\"a\\""}}',
      /^filters\.allocation: not a valid Kubecost filter/,
    ],
    ['an empty expression', '{"filters": {"allocation": ""}}', /^filters\.allocation: empty/],
    [
      'a control character',
      '{"filters": {"allocation": "namespace:\\"a\\u001b\\""}}',
      /^filters\.allocation: control/,
    ],
  ])(
    'PATCH and POST refuse %s: 400 bad_request naming the field, nothing changed',
    async (_w, filters, message) => {
      await create({ name: 'hostile', role: 'reader', filters: { allocation: TEAM_A } });
      for (const res of [
        await admin.call('PATCH', '/service-accounts/hostile', filters),
        await admin.call(
          'POST',
          '/service-accounts',
          `{"name": "hostile-2", "role": "reader", ${filters.slice(1)}`,
        ),
      ]) {
        expect(res.status, res.text).toBe(400);
        expect(res.json.error).toBe('bad_request');
        expect(res.json.message).toMatch(message);
      }
      expect((await admin.call('GET', '/service-accounts/hostile')).json.filters).toEqual({
        allocation: TEAM_A,
      });
      expect((await admin.call('GET', '/service-accounts/hostile-2')).status).toBe(404);
    },
  );

  it('a 4 KiB expression is accepted, one byte more is refused', async () => {
    const at = (n: number) => `namespace:"${'a'.repeat(n - 'namespace:""'.length)}"`;
    await create({ name: 'long', role: 'reader' });
    expect((await patch('long', { filters: { assets: at(4096) } })).status).toBe(200);
    const over = await patch('long', { filters: { assets: at(4097) } });
    expect(over.status).toBe(400);
    expect(over.json.message).toMatch(/^filters\.assets: at most 4096 bytes/);
  });

  it('a filtered account cannot use the admin API (it could mint an unfiltered key)', async () => {
    await create({ name: 'team-admin', role: 'admin', filters: { allocation: TEAM_A } });
    const key = await admin.createKey('team-admin', { description: 'team admin' });
    expect(key.status).toBe(201);
    const teamAdmin = adminClient(a.url, key.json.key as string);
    const refused = await teamAdmin.call('POST', '/service-accounts', {
      name: 'escape',
      role: 'reader',
    });
    expect(refused.status).toBe(403);
    expect(refused.json.error).toBe('filter_required');
    expect((await teamAdmin.call('GET', '/service-accounts')).status).toBe(403);
    expect((await admin.call('GET', '/service-accounts/escape')).status).toBe(404);
  });
});

describe('a filters change reaches every replica at once', () => {
  it("B's very next request carries the filters set (and cleared) on A", async () => {
    // An admin-role account used on B: the admin API refuses filtered accounts, so B's answer
    // shows whether B's verified principal carries filters.
    await create({ name: 'ops', role: 'admin' });
    const key = (await admin.createKey('ops', { description: 'ops' })).json.key as string;
    const viaB = () => adminClient(b.url, key).call('GET', '/service-accounts/ops');
    expect((await viaB()).status).toBe(200);
    expect((await viaB()).status).toBe(200); // cached on B now (cacheTtl 60 s)

    expect((await patch('ops', { filters: { allocation: TEAM_A } })).status).toBe(200);
    const filtered = await viaB();
    expect(filtered.status).toBe(403);
    expect(filtered.json.message).toMatch(/filtered/);

    expect((await patch('ops', { filters: {} })).status).toBe(200);
    expect((await viaB()).status).toBe(200);
  });
});

describe('filters through the CLI, local and remote', () => {
  const local = (args: string[]) => runCli([...args, '--config', localConfig]);
  const remote = (args: string[]) =>
    runCli([...args, '--url', a.url, '--api-key', adminKey], { KEYGATE_CONFIG: '/nonexistent' });
  const json = (r: CliResult) => JSON.parse(r.stdout) as Record<string, unknown>;

  it.each([
    ['local', local],
    ['remote', remote],
  ] as const)(
    '%s: --filter on create and update, KIND= removes one, --clear-filters all; show and list print them',
    async (mode, cli) => {
      const name = `cli-${mode}`;
      const made = await cli([
        'accounts',
        'create',
        name,
        '--role',
        'reader',
        '--filter',
        `allocation=${TEAM_A}`,
        '--filter',
        'cloudCost=provider:"aws"',
        '--json',
      ]);
      expect(made.code, made.stderr).toBe(0);
      expect(json(made).filters).toEqual({ allocation: TEAM_A, cloudCost: 'provider:"aws"' });

      const shown = await cli(['accounts', 'show', name]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toContain(
        `filters:\n  allocation: ${TEAM_A}\n  cloudCost: provider:"aws"\n`,
      );
      const listed = await cli(['accounts', 'list']);
      expect(listed.stdout).toMatch(/^NAME\s+ROLE\s+DISABLED\s+FILTERS\s+CREATED\s+DESCRIPTION$/m);
      expect(listed.stdout).toMatch(
        new RegExp(`^${name}\\s+reader\\s+no\\s+allocation,cloudCost\\s`, 'm'),
      );
      expect(listed.stdout).toMatch(/^root\s+admin\s+no\s+-\s/m);

      // Edits keep the kinds not named: assets added, cloudCost removed, allocation kept.
      const edited = await cli([
        'accounts',
        'update',
        name,
        '--filter',
        'assets=cluster:"c1"',
        '--filter',
        'cloudCost=',
        '--json',
      ]);
      expect(edited.code, edited.stderr).toBe(0);
      expect(json(edited).filters).toEqual({ allocation: TEAM_A, assets: 'cluster:"c1"' });

      const cleared = await cli(['accounts', 'update', name, '--clear-filters', '--json']);
      expect(cleared.code, cleared.stderr).toBe(0);
      expect(json(cleared).filters).toEqual({});
      expect((await cli(['accounts', 'show', name])).stdout).toContain('filters: none\n');

      // The same store state whichever mode wrote it.
      expect((await admin.call('GET', `/service-accounts/${name}`)).json.filters).toEqual({});
    },
  );

  it.each([
    ['local', local],
    ['remote', remote],
  ] as const)(
    '%s: a bad kind is bad usage, a bad expression bad_request (both exit 2), nothing written',
    async (mode, cli) => {
      const name = `bad-${mode}`;
      const badKind = await cli([
        'accounts',
        'create',
        name,
        '--role',
        'reader',
        '--filter',
        'cost=a:"b"',
      ]);
      expect(badKind.code).toBe(2);
      expect(badKind.stderr).toContain(
        '--filter: unknown kind "cost" (kinds: allocation, assets, cloudCost)',
      );
      const noEquals = await cli([
        'accounts',
        'create',
        name,
        '--role',
        'reader',
        '--filter',
        'allocation',
      ]);
      expect(noEquals.code).toBe(2);
      const twice = await cli([
        'accounts',
        'create',
        name,
        '--role',
        'reader',
        '--filter',
        'assets=a:"b"',
        '--filter',
        'assets=c:"d"',
      ]);
      expect(twice.code).toBe(2);
      expect(twice.stderr).toContain('--filter assets is given twice');
      const badExpr = await cli([
        'accounts',
        'create',
        name,
        '--role',
        'reader',
        '--filter',
        'allocation=(namespace:"a"',
        '--json',
      ]);
      expect(badExpr.code).toBe(2);
      expect(JSON.parse(badExpr.stderr.trim().split('\n').at(-1) ?? '')).toMatchObject({
        error: 'bad_request',
        message: expect.stringMatching(/^filters\.allocation: not a valid Kubecost filter/),
      });
      expect((await admin.call('GET', `/service-accounts/${name}`)).status).toBe(404);
    },
  );

  it('apply: an accounts file sets filters per account, diff shows them, refuses bad ones by path', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'keygate-filters-'));
    const file = join(dir, 'accounts.yaml');
    writeFileSync(
      file,
      `accounts:\n  - name: gitops-team\n    role: reader\n    filters:\n      allocation: 'namespace:"team-a"'\n`,
    );
    const applied = await local(['apply', '-f', file]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('filters {"allocation":"namespace:\\"team-a\\""}');
    expect((await admin.call('GET', '/service-accounts/gitops-team')).json.filters).toEqual({
      allocation: TEAM_A,
    });
    writeFileSync(
      file,
      `accounts:\n  - name: gitops-team\n    role: reader\n    filters:\n      allocation: 'namespace:"team-a'\n`,
    );
    const refused = await remote(['apply', '-f', file]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /accounts\[0\]\.filters\.allocation: not a valid Kubecost filter/,
    );
  });
});

it('the proxy still answers through both replicas (filters change nothing for unfiltered keys)', async () => {
  const res = await send(b.url, '/model/assets', { headers: { 'x-api-key': adminKey } });
  expect(res.status).toBe(200);
});
