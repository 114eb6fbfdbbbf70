import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { parseKey } from '../../src/keys/key-format.js';
import { runCli, spawnServe, writeTempConfig } from '../helpers/cli.js';
import { TEST_ROUTES } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { checkAdminAnswer } from '../helpers/openapi-answers.js';
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

/** Problems with a CLI --json output read as the admin API's answer to the same operation. */
function cliAsApi(method: string, path: string, status: number, stdout: string): string[] {
  return checkAdminAnswer({
    method,
    target: `/_keygate/v1${path}`,
    status,
    headers: { 'content-type': 'application/json' },
    text: stdout,
  });
}

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

  it('keys create --json prints the API answer, key included, as one object on stdout', async () => {
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
    const issued = JSON.parse(created.stdout) as Record<string, unknown>;
    expect(issued).toMatchObject({ account: 'ci-reports', scopes: ['read'], expires_at: 0 });
    expect(issued.key).toMatch(/^kg_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$/);
    expect(parseKey(issued.key as string, 'kg')?.id).toBe(issued.id);
    // The same document the admin API answers POST .../api-keys with.
    expect(cliAsApi('POST', '/service-accounts/ci-reports/api-keys', 201, created.stdout)).toEqual(
      [],
    );
    // stderr holds only the audit line (the CLI's actor, the action), never the key.
    const lines = created.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ type: 'audit', action: 'key.create', result: 'ok' });
    expect(lines[0]?.actor).toMatch(/^cli:/);
    expect(created.stderr).not.toContain(issued.key as string);
  });

  it('the key made by the CLI works through keygate serve', async () => {
    const serve = await spawnServe(configPath);
    // Whatever fails below, the server (and its lock on the file store) goes with the test.
    onTestFinished(async () => {
      await serve.stop('SIGKILL');
    });
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
    expect(await serve.stop('SIGTERM')).toBe(0);
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

  for (const [name, args, code] of failures) {
    it(`${name} --json → exit ${code}, one JSON error object on stderr`, async () => {
      const result = await runCli([...args, '--json', '--config', configPath]);
      expect(result.code).toBe(code);
      expect(result.stdout).toBe('');
      const last = result.stderr.trim().split('\n').at(-1) as string;
      const error = JSON.parse(last) as Record<string, unknown>;
      expect(Object.keys(error).sort()).toEqual(['error', 'message']);
      expect(error.error).toMatch(/^[a-z_]+$/);
      expect(typeof error.message).toBe('string');
      // No usage text around it: stderr is audit lines and this object, all JSON.
      for (const line of result.stderr.trim().split('\n'))
        expect(() => JSON.parse(line)).not.toThrow();
    });
  }

  it('--json error codes: usage, config, and the admin API code for service errors', async () => {
    const usage = await runCli(['keys', 'frobnicate', '--json', '--config', configPath]);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stderr)).toMatchObject({ error: 'usage' });
    const flag = await runCli(['--bogus', '--json']);
    expect(flag.code).toBe(2);
    expect(JSON.parse(flag.stderr)).toMatchObject({ error: 'usage' });
    const config = await runCli(['accounts', 'list', '--json', '--config', '/nonexistent/k.yaml']);
    expect(config.code).toBe(2);
    expect(JSON.parse(config.stderr)).toMatchObject({ error: 'config' });
    const missing = await runCli(['keys', 'list', 'nobody', '--json', '--config', configPath]);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stderr.trim().split('\n').at(-1) as string)).toMatchObject({
      error: 'not_found',
    });
  });

  it('every command with a result prints one JSON object on stdout with --json', async () => {
    const json = async (...args: string[]) => {
      const result = await runCli([...args, '--json', '--config', configPath]);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
      expect(result.stdout.endsWith('\n') && !result.stdout.trim().includes('\n')).toBe(true);
      return result.stdout;
    };
    const account = await json('accounts', 'create', 'json-acct', '--role', 'reader');
    expect(cliAsApi('POST', '/service-accounts', 201, account)).toEqual([]);
    expect(cliAsApi('GET', '/service-accounts', 200, await json('accounts', 'list'))).toEqual([]);
    const updated = await json('accounts', 'update', 'json-acct', '--description', 'd');
    expect(cliAsApi('PATCH', '/service-accounts/json-acct', 200, updated)).toEqual([]);
    const issued = JSON.parse(await json('keys', 'create', 'json-acct')) as { id: string };
    const listed = await json('keys', 'list', 'json-acct');
    expect(cliAsApi('GET', '/service-accounts/json-acct/api-keys', 200, listed)).toEqual([]);
    const rotated = await json('keys', 'rotate', 'json-acct', issued.id, '--grace', '0');
    expect(
      cliAsApi('POST', `/service-accounts/json-acct/api-keys/${issued.id}/rotate`, 201, rotated),
    ).toEqual([]);
    const shown = await json('accounts', 'show', 'json-acct');
    expect(cliAsApi('GET', '/service-accounts/json-acct', 200, shown)).toEqual([]);
    expect(JSON.parse(await json('keys', 'revoke', 'json-acct', issued.id))).toEqual({
      revoked: issued.id,
      account: 'json-acct',
    });
    expect(JSON.parse(await json('accounts', 'delete', 'json-acct'))).toEqual({
      deleted: 'json-acct',
    });
  });

  it('revoke and delete without --json print nothing on stdout, as before', async () => {
    await runCli(['accounts', 'create', 'quiet', '--role', 'reader', '--config', configPath]);
    const issued = await runCli(['keys', 'create', 'quiet', '--config', configPath]);
    const id = parseKey(issued.stdout.trim(), 'kg')?.id as string;
    const revoked = await runCli(['keys', 'revoke', 'quiet', id, '--config', configPath]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toBe('');
    expect(revoked.stderr).toContain(`revoked key ${id}`);
    const deleted = await runCli(['accounts', 'delete', 'quiet', '--config', configPath]);
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toBe('');
  });

  it('version --json and config check --json print one object; config check shows no secret', async () => {
    const version = await runCli(['version', '--json']);
    expect(version.code).toBe(0);
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8'));
    expect(JSON.parse(version.stdout)).toEqual({ version: pkg.version, node: process.version });

    const secretConfig = writeTempConfig({
      upstream: { url: 'http://127.0.0.1:9' },
      store: {
        type: 'redis',
        redis: { url: 'redis://:redis-store-secret@127.0.0.1:9/0' },
      },
    });
    const check = await runCli(['config', 'check', secretConfig, '--json']);
    expect(check.code, check.stderr).toBe(0);
    const summary = JSON.parse(check.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ ok: true, path: secretConfig, store: 'redis' });
    expect(check.stdout).not.toContain('redis-store-secret');
    expect(check.stderr).toBe('');

    const bad = await runCli(['config', 'check', '/nonexistent/k.yaml', '--json']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(JSON.parse(bad.stderr)).toMatchObject({ error: 'config' });
  });

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
