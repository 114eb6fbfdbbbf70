import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { parse, stringify } from 'yaml';
import { generateKey } from '../../src/keys/key-format.js';
import { createKeyRuntime } from '../../src/keys/key-runtime.js';
import type { ApplyResult } from '../../src/keys/key-service.js';
import { systemClock } from '../../src/shared/clock.js';
import { openStore } from '../../src/store/open-store.js';
import { RedisKeyStore } from '../../src/store/redis/redis-key-store.js';
import { loggerKeyRuntimeLog } from '../../src/telemetry/key-runtime-log.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { adminClient } from '../helpers/admin-client.js';
import { registerKeysIn } from '../helpers/captured-logs.js';
import { runCli, spawnServe, writeTempConfig } from '../helpers/cli.js';
import { mintKey, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { checkAdminAnswer } from '../helpers/openapi-answers.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let upstream: RecordingUpstream;
let redis: RedisServer;
let dir: string;
let fileConfig: string;
let fileStorePath: string;
let redisConfig: string;

// Cheap argon2 keeps this process-heavy file quick; mint hashes with exactly these parameters.
// A long verdict cache: a pruned key refused at once was refused by invalidation, not expiry.
const KEYS = { argon2: { memoryCost: 4096, timeCost: 1 }, cacheTtl: '60s' };

beforeAll(async () => {
  upstream = await RecordingUpstream.start();
  redis = await RedisServer.start();
  dir = mkdtempSync(join(tmpdir(), 'keygate-apply-'));
  fileStorePath = join(dir, 'keygate.json');
  const common = {
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstream.url, stripPrefix: '/model' },
    routes: TEST_ROUTES,
    keys: KEYS,
  };
  fileConfig = writeTempConfig({
    ...common,
    store: { type: 'file', file: { path: fileStorePath } },
  });
  redisConfig = writeTempConfig({
    ...common,
    store: { type: 'redis', redis: { url: redis.url, keyPrefix: 'kg:' } },
  });
});

afterAll(async () => {
  await upstream?.close();
  await redis?.destroy();
});

interface Minted {
  key: string;
  item: { id: string; hash: string; description: string; scopes?: string[] };
}

/** `keys mint --offline`: the key from stdout, the YAML list item from stderr. */
async function mint(account: string, config: string, ...extra: string[]): Promise<Minted> {
  const out = await runCli(['keys', 'mint', account, '--offline', '--config', config, ...extra]);
  expect(out.code, out.stderr).toBe(0);
  const key = out.stdout.trim();
  expect(out.stderr).not.toContain(key);
  const items = parse(out.stderr) as Minted['item'][];
  expect(items).toHaveLength(1);
  return { key, item: items[0] as Minted['item'] };
}

function writeAccounts(name: string, accounts: unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, stringify({ accounts }));
  return path;
}

async function accountNames(config: string): Promise<string[]> {
  const out = await runCli(['accounts', 'list', '--json', '--config', config]);
  expect(out.code, out.stderr).toBe(0);
  return (JSON.parse(out.stdout) as { items: Array<{ name: string }> }).items.map((a) => a.name);
}

describe('keys mint --offline', () => {
  it('prints a key and its argon2id record with the configured parameters, touching no store', async () => {
    const noStore = writeTempConfig({
      upstream: { url: 'http://127.0.0.1:1' },
      routes: TEST_ROUTES,
      keys: KEYS,
      // A Redis nobody listens on: minting must not try it.
      store: { type: 'redis', redis: { url: 'redis://127.0.0.1:1/0', connectTimeout: '200ms' } },
    });
    const { key, item } = await mint(
      'ci-nightly',
      noStore,
      '--scopes',
      'read',
      '--description',
      'nightly',
    );
    expect(key).toMatch(new RegExp(`^kg_${item.id}_[0-9A-Za-z]{49}$`));
    expect(item.hash).toMatch(/^\$argon2id\$v=19\$m=4096,t=1,p=1\$/);
    expect(item).toMatchObject({ description: 'nightly', scopes: ['read'] });
  });

  it('refuses a malformed account name and a past expiry with exit 2', async () => {
    expect(
      (await runCli(['keys', 'mint', 'Bad_Name', '--offline', '--config', fileConfig])).code,
    ).toBe(2);
    const past = await runCli([
      'keys',
      'mint',
      'a',
      '--offline',
      '--expires-at',
      '1000',
      '--config',
      fileConfig,
    ]);
    expect(past.code).toBe(2);
    expect(past.stderr).toContain('expires_at');
  });
});

describe('keygate apply on the file store (CLI process)', () => {
  let nightly: Minted;
  let accountsFile: string;

  it('--dry-run prints the diff and writes nothing', async () => {
    nightly = await mint('ci-nightly', fileConfig, '--scopes', 'read');
    accountsFile = writeAccounts('file-accounts.yaml', [
      { name: 'ci-nightly', role: 'member', description: 'nightly', keys: [nightly.item] },
    ]);
    const dry = await runCli(['apply', '-f', accountsFile, '--dry-run', '--config', fileConfig]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toBe(
      `+ account ci-nightly: role "member", description "nightly", disabled false\n` +
        `+ key ci-nightly/${nightly.item.id}: description ${JSON.stringify(nightly.item.description)}, expires_at 0, scopes read\n` +
        '2 changes planned (dry run: nothing written)\n',
    );
    expect(await accountNames(fileConfig)).toEqual([]);
  });

  it('applies, then a second run says "no changes" (and --json {"changes":[]})', async () => {
    const first = await runCli(['apply', '-f', accountsFile, '--config', fileConfig]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/2 changes applied\n$/);
    // One audit line per change, as the CLI user.
    expect(first.stderr).toMatch(/"action":"account.create"/);
    expect(first.stderr).toMatch(/"action":"key.import"/);
    const second = await runCli(['apply', '-f', accountsFile, '--config', fileConfig]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe('no changes\n');
    const json = await runCli(['apply', '-f', accountsFile, '--json', '--config', fileConfig]);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ changes: [] });
  });

  it('the minted key works on a keygate started afterwards', async () => {
    const serve = await spawnServe(fileConfig);
    onTestFinished(() => serve.stop().then(() => undefined));
    const res = await send(serve.url, '/model/allocation', {
      headers: { 'x-api-key': nightly.key },
    });
    expect(res.status).toBe(200);
  });

  const plaintext = generateKey('kg');
  registerKeysIn(plaintext.full);
  const HASH =
    '$argon2id$v=19$m=4096,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
  const k = (fields: Record<string, unknown>) => [
    { name: 'ok-account', role: 'reader' },
    { name: 'a', role: 'reader', keys: [{ id: 'AbCdEf123456', hash: HASH, ...fields }] },
  ];
  const BROKEN: Array<[string, string, RegExp]> = [
    ['bad YAML', 'accounts:\n  - name: [x\n', /line \d+, column \d+: not valid YAML/],
    [
      'unknown key',
      stringify({ accounts: [{ name: 'a', role: 'reader', owner: 'me' }] }),
      /accounts\[0\]\.owner: unknown field/,
    ],
    [
      'bad name',
      stringify({ accounts: [{ name: 'A B', role: 'reader' }] }),
      /accounts\[0\]\.name: expected 1-63/,
    ],
    [
      'unknown role',
      stringify({ accounts: [{ name: 'a', role: 'owner' }] }),
      /accounts\[0\]\.role: unknown role "owner"/,
    ],
    [
      'scope not in role',
      stringify({ accounts: k({ scopes: ['write'] }) }),
      /accounts\[1\]\.keys\[0\]\.scopes: a scope not granted by role "reader"/,
    ],
    [
      'duplicate id',
      stringify({
        accounts: [
          ...k({}),
          { name: 'b', role: 'reader', keys: [{ id: 'AbCdEf123456', hash: HASH }] },
        ],
      }),
      /accounts\[2\]\.keys\[0\]\.id: key id AbCdEf123456 is listed twice/,
    ],
    [
      'hash not argon2id',
      stringify({ accounts: k({ hash: HASH.replace('argon2id', 'argon2i') }) }),
      /accounts\[1\]\.keys\[0\]\.hash: expected an argon2id PHC string/,
    ],
    [
      'huge m',
      stringify({ accounts: k({ hash: HASH.replace('m=4096', 'm=4194304') }) }),
      /accounts\[1\]\.keys\[0\]\.hash: m \(memory, KiB\) must be from 1024 to 262144/,
    ],
    [
      'plaintext key in hash',
      stringify({ accounts: k({ hash: plaintext.full }) }),
      /accounts\[1\]\.keys\[0\]\.hash: this is an API key, not its hash/,
    ],
    [
      '__proto__ as account name',
      stringify({ accounts: [{ name: '__proto__', role: 'reader' }] }),
      /accounts\[0\]\.name: expected 1-63/,
    ],
    [
      '__proto__ as key field',
      'accounts:\n  - name: a\n    role: reader\n    keys:\n      - id: AbCdEf123456\n        hash: "' +
        HASH +
        '"\n        __proto__: {scopes: [admin]}\n',
      /accounts\[0\]\.keys\[0\]\.__proto__: unknown field/,
    ],
  ];

  it.each(BROKEN)(
    'a broken file (%s) exits 2 naming the path, and nothing is written',
    async (what, source, message) => {
      const before = readFileSync(fileStorePath, 'utf8');
      const path = join(dir, `broken-${what.replace(/\W+/g, '-')}.yaml`);
      writeFileSync(path, source);
      const out = await runCli(['apply', '-f', path, '--prune', '--config', fileConfig]);
      expect(out.code).toBe(2);
      expect(out.stderr).toMatch(message);
      expect(out.stderr).not.toContain(plaintext.full);
      expect(out.stdout).toBe('');
      expect(readFileSync(fileStorePath, 'utf8')).toBe(before);
    },
  );

  it('-f /dev/zero (an endless file) ends in the size error, exit 2, nothing written', async () => {
    const before = readFileSync(fileStorePath, 'utf8');
    const out = await runCli(['apply', '-f', '/dev/zero', '--config', fileConfig]);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/larger than 4194304 bytes/);
    expect(readFileSync(fileStorePath, 'utf8')).toBe(before);
  });
});

describe('keygate apply on Redis with a running keygate', () => {
  it('--prune revokes a removed key, refused at once by the running gateway; a second prune changes nothing', async () => {
    const serve = await spawnServe(redisConfig);
    onTestFinished(() => serve.stop().then(() => undefined));
    const stays = await mint('reports', redisConfig);
    const goes = await mint('reports', redisConfig);
    const full = writeAccounts('redis-full.yaml', [
      { name: 'reports', role: 'reader', keys: [stays.item, goes.item] },
    ]);
    const applied = await runCli(['apply', '-f', full, '--config', redisConfig]);
    expect(applied.code, applied.stderr).toBe(0);
    expect((await runCli(['apply', '-f', full, '--config', redisConfig])).stdout).toBe(
      'no changes\n',
    );
    for (const key of [stays.key, goes.key]) {
      const res = await send(serve.url, '/model/allocation', { headers: { 'x-api-key': key } });
      expect(res.status).toBe(200);
    }

    const trimmed = writeAccounts('redis-trimmed.yaml', [
      { name: 'reports', role: 'reader', keys: [stays.item] },
    ]);
    const dry = await runCli([
      'apply',
      '-f',
      trimmed,
      '--prune',
      '--dry-run',
      '--config',
      redisConfig,
    ]);
    expect(dry.stdout).toBe(
      `- key reports/${goes.item.id} (revoked)\n1 change planned (dry run: nothing written)\n`,
    );
    // The dry run wrote nothing: the key still works.
    expect(
      (await send(serve.url, '/model/allocation', { headers: { 'x-api-key': goes.key } })).status,
    ).toBe(200);

    const pruned = await runCli([
      'apply',
      '-f',
      trimmed,
      '--prune',
      '--json',
      '--config',
      redisConfig,
    ]);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(JSON.parse(pruned.stdout)).toEqual({
      changes: [{ action: 'key.revoke', account: 'reports', key_id: goes.item.id }],
    });
    // The next request, with the verdict cached for a minute before: refused at once.
    const refused = await send(serve.url, '/model/allocation', {
      headers: { 'x-api-key': goes.key },
    });
    expect(refused.status).toBe(401);
    const kept = await send(serve.url, '/model/allocation', {
      headers: { 'x-api-key': stays.key },
    });
    expect(kept.status).toBe(200);
    expect(
      (await runCli(['apply', '-f', trimmed, '--prune', '--config', redisConfig])).stdout,
    ).toBe('no changes\n');

    // Pruning the whole account: deleted with its keys, refused at once too.
    const empty = writeAccounts('redis-empty.yaml', []);
    const gone = await runCli(['apply', '-f', empty, '--prune', '--config', redisConfig]);
    expect(gone.stdout).toBe('- account reports (deleted with all its keys)\n1 change applied\n');
    expect(
      (await send(serve.url, '/model/allocation', { headers: { 'x-api-key': stays.key } })).status,
    ).toBe(401);
  });

  it('POST /_keygate/v1/apply runs the same code: dry_run, apply, no changes, a 400 naming the path', async () => {
    const serve = await spawnServe(redisConfig);
    onTestFinished(() => serve.stop().then(() => undefined));
    const loaded = testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: redis.url, keyPrefix: 'kg:' } },
      keys: KEYS,
    });
    const admin = adminClient(serve.url, (await mintKey(loaded, 'root', 'admin')).key);
    const minted = await mint('via-api', redisConfig);
    const body = { accounts: [{ name: 'via-api', role: 'reader', keys: [minted.item] }] };
    const answer = async (query: string, payload: unknown) => {
      const res = await admin.call('POST', `/apply${query}`, payload);
      expect(
        checkAdminAnswer({
          method: 'POST',
          target: `/_keygate/v1/apply${query}`,
          status: res.status,
          headers: res.headers,
          text: res.text,
        }),
      ).toEqual([]);
      return res;
    };
    const dry = await answer('?dry_run=true', body);
    expect(dry.status).toBe(200);
    expect((JSON.parse(dry.text) as { changes: unknown[] }).changes).toHaveLength(2);
    expect(
      (await send(serve.url, '/model/allocation', { headers: { 'x-api-key': minted.key } })).status,
    ).toBe(401);
    const applied = await answer('', body);
    expect((JSON.parse(applied.text) as { changes: unknown[] }).changes).toHaveLength(2);
    expect(
      (await send(serve.url, '/model/allocation', { headers: { 'x-api-key': minted.key } })).status,
    ).toBe(200);
    expect(JSON.parse((await answer('', body)).text)).toEqual({ changes: [] });
    const bad = await answer('?prune=true', { accounts: [{ name: 'via-api', role: 'owner' }] });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text)).toMatchObject({
      error: 'bad_request',
      message: expect.stringMatching(/^accounts\[0\]\.role: unknown role/),
    });
    expect((await answer('?prune=maybe', body)).status).toBe(400);
    // Nothing of the refused prune was written.
    expect(
      (await send(serve.url, '/model/allocation', { headers: { 'x-api-key': minted.key } })).status,
    ).toBe(200);
  });

  it('concurrent applies of one file (replicas starting together): one writes, the others re-plan to no changes', async () => {
    const config = testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: redis.url, keyPrefix: 'kg:race:' } },
      keys: KEYS,
    });
    const runtimes = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const { store, bus } = await openStore(config.store, { requireConnection: true });
        const runtime = createKeyRuntime({
          config,
          store,
          bus,
          clock: systemClock,
          log: loggerKeyRuntimeLog(createLogger('silent')),
          hasher: { hash: async () => 'unused', verify: async () => false },
          subscribe: false,
        });
        onTestFinished(async () => {
          await runtime.close();
          await store.close();
        });
        return runtime;
      }),
    );
    const HASH =
      '$argon2id$v=19$m=4096,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const desired = {
      accounts: [
        { name: 'raced', role: 'reader', keys: [{ id: 'RaceRace0001', hash: HASH }] },
        { name: 'raced-too', role: 'reader' },
      ],
    };
    const results: ApplyResult[] = await Promise.all(
      runtimes.map((r) => r.service.applyAccounts({ kind: 'cli', user: 'ops' }, desired)),
    );
    // Without WATCH every writer would have created the records and reported it.
    expect(
      results
        .flatMap((r) => r.changes)
        .map((c) => c.action)
        .sort(),
    ).toEqual(['account.create', 'account.create', 'key.import']);
    const check = await runtimes[0]?.service.applyAccounts({ kind: 'cli', user: 'ops' }, desired);
    expect(check?.changes).toEqual([]);
  });

  it('a batch with one stale expectation writes nothing to Redis', async () => {
    const config = testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: redis.url, keyPrefix: 'kg:batch:' } },
    });
    const store = RedisKeyStore.create(config.store.redis);
    await store.connect();
    onTestFinished(() => store.close());
    const a = {
      name: 'a',
      role: 'reader',
      description: '',
      disabled: false,
      createdAt: 1,
      updatedAt: 1,
      managed: true,
    };
    await store.applyAccounts({
      createAccounts: [a],
      updateAccounts: [],
      deleteAccounts: [],
      createKeys: [],
      updateKeys: [],
    });
    expect(await store.getAccount('a')).toEqual(a);
    const key = {
      id: 'AbCdEf123456',
      account: 'b',
      hash: 'h',
      description: '',
      scopes: null,
      createdAt: 2,
      expiresAt: 0,
      revokedAt: 0,
      lastUsedAt: 0,
      replacedBy: '',
      generation: 1,
    };
    await expect(
      store.applyAccounts({
        createAccounts: [{ ...a, name: 'b' }],
        updateAccounts: [
          { expected: { ...a, updatedAt: 0 }, next: { ...a, role: 'admin', updatedAt: 2 } },
        ],
        deleteAccounts: [],
        createKeys: [key],
        updateKeys: [],
      }),
    ).rejects.toMatchObject({ code: 'conflict' });
    expect(await store.getAccount('b')).toBeNull();
    expect(await store.getKey(key.id)).toBeNull();
    expect(await store.getAccount('a')).toEqual(a);
    // The same batch with the right expectation lands whole.
    await store.applyAccounts({
      createAccounts: [{ ...a, name: 'b' }],
      updateAccounts: [{ expected: a, next: { ...a, role: 'admin', updatedAt: 2 } }],
      deleteAccounts: [],
      createKeys: [key],
      updateKeys: [],
    });
    expect((await store.getAccount('a'))?.role).toBe('admin');
    expect(await store.listKeys('b')).toEqual([key]);
  });
});
