import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKey } from '../../src/keys/key-format.js';
import { runCli, spawnServe, writeTempConfig } from '../helpers/cli.js';
import { TEST_ROUTES } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { freePort } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let upstream: RecordingUpstream;
let configPath: string;

beforeAll(async () => {
  upstream = await RecordingUpstream.start();
  const dataDir = mkdtempSync(join(tmpdir(), 'keygate-cli-'));
  configPath = writeTempConfig({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstream.url, stripPrefix: '/model' },
    store: { type: 'file', file: { path: join(dataDir, 'keygate.json') } },
    routes: TEST_ROUTES,
    // Cheap argon2 keeps this CLI-heavy file quick; the flood and credential tests use the defaults.
    keys: { argon2: { memoryCost: 4096, timeCost: 1 } },
  });
});

afterAll(() => upstream?.close());

describe('keygate CLI on the file store', () => {
  let key = '';

  it('accounts create, then keys create prints the key alone on stdout', async () => {
    const account = await runCli([
      'accounts',
      'create',
      'ci-reports',
      '--role',
      'reader',
      '--config',
      configPath,
    ]);
    expect(account.code, account.stderr).toBe(0);
    expect(account.stderr).toContain('created service account "ci-reports"');

    const created = await runCli([
      'keys',
      'create',
      'ci-reports',
      '--description',
      'nightly cost report',
      '--expires-in',
      '30d',
      '--config',
      configPath,
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^kg_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}\n$/);
    key = created.stdout.trim();
    const parsed = parseKey(key, 'kg');
    expect(parsed).not.toBeNull();
    // Metadata (with the id, never the key) goes to stderr.
    expect(created.stderr).toContain(parsed!.id);
    expect(created.stderr).not.toContain(key);
  });

  it('--json puts machine-readable metadata on stderr, still without the key', async () => {
    const created = await runCli([
      'keys',
      'create',
      'ci-reports',
      '--json',
      '--scopes',
      'read',
      '--config',
      configPath,
    ]);
    expect(created.code, created.stderr).toBe(0);
    const lines = created.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const meta = lines.find((l) => l.type === undefined) as Record<string, unknown>;
    // Beside it, the audit line: the CLI's actor, the action, never the key.
    const audit = lines.find((l) => l.type === 'audit');
    expect(audit).toMatchObject({ action: 'key.create', target: 'ci-reports', result: 'ok' });
    expect(audit?.actor).toMatch(/^cli:/);
    expect(meta).toMatchObject({ account: 'ci-reports', scopes: ['read'], expires_at: 0 });
    expect(meta.key).toBeUndefined();
    expect(created.stderr).not.toContain(created.stdout.trim());
  });

  it('the key made by the CLI works through keygate serve', async () => {
    const serve = await spawnServe(configPath);
    try {
      const res = await send(serve.url, '/model/allocation?window=1d', {
        headers: { 'x-api-key': key },
      });
      expect(res.status).toBe(200);
      expect(upstream.requests.at(-1)?.url).toBe('/allocation?window=1d');
      expect(upstream.requests.at(-1)?.headers['x-keygate-account']).toBe('ci-reports');

      // The running server holds the file store: a second process is refused, not silently racing it.
      const locked = await runCli(['keys', 'create', 'ci-reports', '--config', configPath]);
      expect(locked.code).toBe(1);
      expect(locked.stderr).toContain('in use by keygate pid');
      expect(locked.stdout).toBe('');
    } finally {
      expect(await serve.stop('SIGTERM')).toBe(0);
    }
  });

  const failures: Array<[name: string, args: string[], code: number, message: string]> = [
    [
      'unknown role',
      ['accounts', 'create', 'x1', '--role', 'superuser'],
      2,
      'unknown role "superuser"',
    ],
    ['bad account name', ['accounts', 'create', 'Bad_Name', '--role', 'reader'], 2, 'name:'],
    [
      'duplicate account',
      ['accounts', 'create', 'ci-reports', '--role', 'reader'],
      1,
      'already exists',
    ],
    ['missing --role', ['accounts', 'create', 'x2'], 2, '--role'],
    ['unknown account', ['keys', 'create', 'nobody'], 1, 'does not exist'],
    [
      'bad --expires-in',
      ['keys', 'create', 'ci-reports', '--expires-in', 'soon'],
      2,
      '--expires-in',
    ],
    [
      'expiry in the past',
      ['keys', 'create', 'ci-reports', '--expires-at', '2020-01-01T00:00:00Z'],
      2,
      'expires_at',
    ],
    [
      'scope wider than the role',
      ['keys', 'create', 'ci-reports', '--scopes', 'write'],
      2,
      'not granted by role',
    ],
    ['unknown flag', ['keys', 'create', 'ci-reports', '--frobnicate'], 2, 'usage'],
  ];
  for (const [name, args, code, message] of failures) {
    it(`${name} → exit ${code}`, async () => {
      const result = await runCli([...args, '--config', configPath]);
      expect(result.code).toBe(code);
      expect(result.stderr).toContain(message);
      expect(result.stdout).toBe('');
    });
  }

  it('a failed keys create leaves no key behind', async () => {
    const list = async () => {
      const { FileKeyStore } = await import('../../src/store/file-key-store.js');
      const { loadConfig } = await import('../../src/config/load.js');
      const store = await FileKeyStore.open(loadConfig({ file: configPath }).store.file.path);
      const keys = await store.listKeys('ci-reports');
      await store.close();
      return keys.length;
    };
    const before = await list();
    await runCli(['keys', 'create', 'ci-reports', '--scopes', 'write', '--config', configPath]);
    expect(await list()).toBe(before);
  });

  it('version prints the package version', async () => {
    const result = await runCli(['version']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^keygate \d+\.\d+\.\d+ \(node v\d+/);
  });
});

describe('keygate CLI on an unreachable Redis', () => {
  it('fails with exit 1 and says the store is unavailable', async () => {
    const path = writeTempConfig({
      upstream: { url: 'http://127.0.0.1:9' },
      store: {
        type: 'redis',
        redis: { url: `redis://127.0.0.1:${await freePort()}/0`, connectTimeout: '1s' },
      },
    });
    const result = await runCli(['accounts', 'create', 'x', '--role', 'reader', '--config', path]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/ECONNREFUSED|unavailable/);
  });
});
