import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseKey } from '../../src/keys/key-format.js';
import { type CliResult, runCli, spawnServe, writeTempConfig } from '../helpers/cli.js';
import { type Gateway, startGateway, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { freePort, RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

// Cheap argon2: this file spawns many CLIs; the flood and credential tests use the defaults.
const ARGON2 = { memoryCost: 4096, timeCost: 1 };

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
let adminKey: string;
let localConfig: string;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  const store = { type: 'redis', redis: { url: `redis://127.0.0.1:${redis.port}/0` } };
  gw = await startGateway({
    config: testConfig(upstream.url, { store, keys: { argon2: ARGON2 } }),
  });
  adminKey = (await gw.issue('root', 'admin')).key;
  // The same store, for local-mode runs to compare the output with.
  localConfig = writeTempConfig({
    upstream: { url: upstream.url },
    routes: TEST_ROUTES,
    store,
    keys: { argon2: ARGON2 },
  });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

/** A CLI run in remote mode given by flags, with no KEYGATE_CONFIG that could point at a store. */
function remote(args: string[], key = adminKey, url = gw.url): Promise<CliResult> {
  return runCli([...args, '--url', url, '--api-key', key], { KEYGATE_CONFIG: '/nonexistent' });
}

function viaEnv(args: string[], key = adminKey, url = gw.url): Promise<CliResult> {
  return runCli(args, { KEYGATE_URL: url, KEYGATE_API_KEY: key, KEYGATE_CONFIG: '/nonexistent' });
}

function expectNoKey(result: CliResult, key: string): void {
  expect(result.stdout).not.toContain(key);
  expect(result.stderr).not.toContain(key);
}

async function status(key: string): Promise<{ status: number; error: unknown }> {
  const res = await send(gw.url, '/model/assets', { headers: { 'x-api-key': key } });
  return { status: res.status, error: res.json.error };
}

describe('remote CLI against a running keygate on Redis', () => {
  it('creates, lists and revokes with flags: the key alone on stdout, refused at once once revoked', async () => {
    const created = await remote(['accounts', 'create', 'flags', '--role', 'member']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toBe('created service account "flags" with role member\n');

    const key = await remote(['keys', 'create', 'flags', '--description', 'remote']);
    expect(key.code, key.stderr).toBe(0);
    const issued = key.stdout.trim();
    // Exactly one line, the key, as local mode prints it.
    expect(key.stdout).toBe(`${issued}\n`);
    const parsed = parseKey(issued, 'kg');
    expect(parsed).not.toBeNull();
    expect(key.stderr).toMatch(
      new RegExp(
        `^created key ${parsed?.id} for "flags" \\(expires never\\); it is shown only once\\n$`,
      ),
    );
    expect((await status(issued)).status).toBe(200);

    const accounts = await remote(['accounts', 'list']);
    expect(accounts.code).toBe(0);
    expect(accounts.stdout).toMatch(/^flags\s+member\s+no\s/m);
    const keys = await remote(['keys', 'list', 'flags']);
    expect(keys.code).toBe(0);
    expect(keys.stdout).toContain(parsed?.id);

    const revoked = await remote(['keys', 'revoke', 'flags', parsed?.id as string]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stderr).toBe(`revoked key ${parsed?.id} of "flags"\n`);
    expect(await status(issued)).toEqual({ status: 401, error: 'revoked_key' });
  });

  it('creates, lists and revokes with KEYGATE_URL and KEYGATE_API_KEY', async () => {
    expect((await viaEnv(['accounts', 'create', 'envs', '--role', 'reader'])).code).toBe(0);
    const key = await viaEnv(['keys', 'create', 'envs', '--json']);
    expect(key.code, key.stderr).toBe(0);
    const issued = JSON.parse(key.stdout) as { id: string; key: string; account: string };
    expect(issued.account).toBe('envs');
    expect((await status(issued.key)).status).toBe(200);
    const list = await viaEnv(['keys', 'list', 'envs', '--json']);
    expect(
      (JSON.parse(list.stdout) as { items: Array<{ id: string }> }).items.map((k) => k.id),
    ).toEqual([issued.id]);
    expect((await viaEnv(['keys', 'revoke', 'envs', issued.id])).code).toBe(0);
    expect(await status(issued.key)).toEqual({ status: 401, error: 'revoked_key' });
    // The admin key is in the environment of every run above, never in what they printed.
    for (const r of [key, list]) expect(r.stderr).not.toContain(adminKey);
  });

  it('prints exactly what local mode prints for the same store', async () => {
    expect((await remote(['accounts', 'create', 'same', '--role', 'member'])).code).toBe(0);
    expect((await remote(['keys', 'create', 'same', '--expires-in', '30d'])).code).toBe(0);
    for (const args of [
      ['accounts', 'list'],
      ['accounts', 'list', '--json'],
      ['accounts', 'show', 'same'],
      ['accounts', 'show', 'same', '--json'],
      ['keys', 'list', 'same'],
      ['keys', 'list', 'same', '--json'],
      ['keys', 'list', '--expiring', '31d'],
      ['keys', 'list', '--expiring', '31d', '--json'],
      ['accounts', 'show', 'nobody'],
      ['keys', 'revoke', 'same', 'AAAAAAAAAAAA'],
      ['keys', 'revoke', 'same', '..'],
      ['accounts', 'delete', '..'],
      ['keys', 'create', 'same', '--expires-at', '1'],
    ]) {
      const local = await runCli([...args, '--config', localConfig]);
      const far = await remote(args);
      expect({ code: far.code, stdout: far.stdout }, args.join(' ')).toEqual({
        code: local.code,
        stdout: local.stdout,
      });
      // Local stderr also carries audit lines (the server writes them in remote mode).
      const said = (r: CliResult) => r.stderr.split('\n').filter((l) => l.startsWith('keygate:'));
      expect(said(far), args.join(' ')).toEqual(said(local));
    }
  });

  it('a non-admin key is refused: exit 1, insufficient_scope, the key never printed', async () => {
    const member = (await gw.issue('worker', 'member')).key;
    for (const run of [remote, viaEnv]) {
      const result = await run(['accounts', 'list'], member);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^keygate: insufficient_scope: /);
      expectNoKey(result, member);
    }
    const json = await remote(['keys', 'create', 'worker', '--json'], member);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stderr).error).toBe('insufficient_scope');
  });

  it('not_found is exit 1 and bad_request exit 2, as in local mode', async () => {
    expect((await remote(['accounts', 'show', 'nobody'])).code).toBe(1);
    const bad = await remote(['accounts', 'create', 'bad', '--role', 'no-such-role']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^keygate: bad_request: /);
  });

  it('a wrong URL (nothing listening) is exit 1 naming the URL, never the key', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const result = await remote(['accounts', 'list'], adminKey, url);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`keygate: cannot reach keygate at ${url}: ECONNREFUSED\n`);
    expectNoKey(result, adminKey);
  });

  it('an HTML answer (not keygate) is exit 1 with a clear message, never the key', async () => {
    const html = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<html><body>login ${adminKey}</body></html>`);
    });
    for (const args of [
      ['accounts', 'list'],
      ['keys', 'create', 'same'],
    ]) {
      const result = await remote(args, adminKey, html.url);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain("not the admin API's JSON");
      expectNoKey(result, adminKey);
    }
  });

  it('a redirect is not followed: exit 1, and the key never reaches where it points', async () => {
    const elsewhere = await serve((req, res) => {
      elsewhere.hits.push(String(req.headers['x-api-key']));
      res.end('{}');
    });
    const redirecting = await serve((req, res) => {
      res.writeHead(307, { location: `${elsewhere.url}${req.url}` });
      res.end();
    });
    const result = await remote(['accounts', 'list'], adminKey, redirecting.url);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/answered 307, a redirect; it is not followed/);
    expectNoKey(result, adminKey);
    expect(elsewhere.hits).toEqual([]);
  });

  it('a URL with user info or another scheme is bad usage (exit 2), never echoed', async () => {
    for (const url of [
      `http://admin:${adminKey}@127.0.0.1:1`,
      'ftp://127.0.0.1',
      'file:///etc/passwd',
    ]) {
      const result = await remote(['accounts', 'list'], adminKey, url);
      expect(result.code, url).toBe(2);
      expectNoKey(result, adminKey);
    }
  });

  it('takes the key from --api-key-file and from a --cli-config file; a broken file is exit 2 naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-remote-'));
    const keyFile = join(dir, 'admin.key');
    writeFileSync(keyFile, `${adminKey}\n`, { mode: 0o600 });
    const fromFile = await runCli(['accounts', 'list', '--url', gw.url, '--api-key-file', keyFile]);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromFile.stdout).toMatch(/^root\s+admin/m);

    const cliConfig = join(dir, 'cli.yaml');
    writeFileSync(cliConfig, `url: ${gw.url}\napi_key_file: admin.key\n`);
    const fromConfig = await runCli(['keys', 'list', 'root', '--cli-config', cliConfig]);
    expect(fromConfig.code, fromConfig.stderr).toBe(0);

    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, `url: ${gw.url}\napi_key: ${adminKey}\nextra: [1\n`);
    const bad = await runCli(['accounts', 'list', '--cli-config', broken]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(broken);
    expectNoKey(bad, adminKey);
    const missing = await runCli(['accounts', 'list', '--cli-config', join(dir, 'none.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(join(dir, 'none.yaml'));
  });
});

it('remote CLI works against a running keygate on the file store (no need to stop it)', async () => {
  const up = await RecordingUpstream.start();
  onTestFinished(() => up.close());
  const dir = mkdtempSync(join(tmpdir(), 'keygate-remote-file-'));
  const config = writeTempConfig({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: up.url, stripPrefix: '/model' },
    store: { type: 'file', file: { path: join(dir, 'keygate.json') } },
    routes: TEST_ROUTES,
    keys: { argon2: ARGON2 },
  });
  // The first admin key, made locally before keygate runs (as `kubectl exec` would).
  expect(
    (await runCli(['accounts', 'create', 'root', '--role', 'admin', '--config', config])).code,
  ).toBe(0);
  const admin = (await runCli(['keys', 'create', 'root', '--config', config])).stdout.trim();
  const server = await spawnServe(config);
  onTestFinished(async () => {
    await server.stop();
  });

  // Local mode is locked out while keygate holds the file store...
  const locked = await runCli(['accounts', 'list', '--config', config]);
  expect(locked.code).toBe(1);
  // ...and told about the remote CLI.
  expect(locked.stderr).toMatch(/in use by keygate pid .*--url URL --api-key-file FILE/);
  // ...remote mode is not.
  const env = { KEYGATE_URL: server.url, KEYGATE_API_KEY: admin };
  expect((await runCli(['accounts', 'create', 'ci', '--role', 'member'], env)).code).toBe(0);
  const created = await runCli(['keys', 'create', 'ci'], env);
  expect(created.code, created.stderr).toBe(0);
  const key = created.stdout.trim();
  const id = parseKey(key, 'kg')?.id as string;
  const ok = await send(server.url, '/model/assets', { headers: { 'x-api-key': key } });
  expect(ok.status).toBe(200);
  expect((await runCli(['keys', 'revoke', 'ci', id], env)).code).toBe(0);
  const refused = await send(server.url, '/model/assets', { headers: { 'x-api-key': key } });
  expect([refused.status, refused.json.error]).toEqual([401, 'revoked_key']);
});

/** A plain HTTP server on port 0 that is not keygate. */
async function serve(
  handler: (
    req: import('node:http').IncomingMessage,
    res: import('node:http').ServerResponse,
  ) => void,
): Promise<{ url: string; hits: string[] }> {
  const server: Server = createServer((req, res) => handler(req, res));
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  onTestFinished(() => new Promise<void>((done) => server.close(() => done())));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, hits: [] };
}

describe('keygate apply in remote mode (POST /_keygate/v1/apply)', () => {
  it('dry-run writes nothing, apply imports, a second run says no changes, --prune refuses the key at once', async () => {
    const minted = await runCli(['keys', 'mint', 'gitops', '--offline', '--config', localConfig]);
    expect(minted.code, minted.stderr).toBe(0);
    const key = minted.stdout.trim();
    const [item] = parse(minted.stderr) as unknown[];
    const dir = mkdtempSync(join(tmpdir(), 'kg-remote-apply-'));
    const file = join(dir, 'accounts.yaml');
    const withKey = { accounts: [{ name: 'gitops', role: 'reader', keys: [item] }] };
    writeFileSync(file, stringify(withKey));

    const dry = await viaEnv(['apply', '-f', file, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('+ account gitops');
    expect(dry.stdout).toContain('(dry run: nothing written)');
    expect((await status(key)).status).toBe(401);

    const applied = await remote(['apply', '-f', file]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/2 changes applied\n$/);
    expect((await status(key)).status).toBe(200);

    const again = await remote(['apply', '-f', file, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ changes: [] });

    writeFileSync(file, stringify({ accounts: [{ name: 'gitops', role: 'reader', keys: [] }] }));
    const pruned = await remote(['apply', '-f', file, '--prune']);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toContain('(revoked)');
    expect(await status(key)).toEqual({ status: 401, error: 'revoked_key' });
    for (const run of [minted, dry, applied, again, pruned]) {
      expect(run.stderr).not.toContain(adminKey);
    }
    for (const run of [dry, applied, again, pruned]) expectNoKey(run, key);
  });

  it('a broken file is exit 2 naming the path, and nothing is sent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-remote-apply-'));
    const file = join(dir, 'accounts.yaml');
    writeFileSync(file, stringify({ accounts: [{ name: 'x', role: 'no-such-role' }] }));
    const out = await remote(['apply', '-f', file]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('accounts[0].role');
    const listed = await remote(['accounts', 'list', '--json']);
    expect(JSON.parse(listed.stdout).items.map((a: { name: string }) => a.name)).not.toContain('x');
  });

  it('a non-admin key cannot apply: exit 1, insufficient_scope', async () => {
    const reader = (await gw.issue('apply-reader', 'reader')).key;
    const dir = mkdtempSync(join(tmpdir(), 'kg-remote-apply-'));
    const file = join(dir, 'accounts.yaml');
    writeFileSync(file, stringify({ accounts: [] }));
    const out = await remote(['apply', '-f', file], reader);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('insufficient_scope');
    expectNoKey(out, reader);
  });
});
