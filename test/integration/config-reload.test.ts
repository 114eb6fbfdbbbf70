import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { type ServeProcess, spawnServe } from '../helpers/cli.js';
import { mintKey, TEST_ROUTES } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { parsePrometheusText, series } from '../helpers/prom-text.js';
import { until } from '../helpers/until.js';
import { RecordingUpstream } from '../helpers/upstream.js';

/**
 * keygate as its own process (the built CLI), its config laid out the way Kubernetes mounts a
 * ConfigMap volume: <dir>/keygate.yaml → ..data/keygate.yaml, ..data → a timestamped directory.
 * Writing the target file in place is invisible to the directory watcher (it watches <dir>),
 * so SIGHUP tests see SIGHUP alone; swapping ..data is what the watcher must see.
 */
let upstream: RecordingUpstream;

beforeAll(async () => {
  upstream = await RecordingUpstream.start();
});
afterAll(async () => {
  await upstream?.close();
});

interface Running {
  serve: ServeProcess;
  key: string;
  dir: string;
  /** Rewrites the file the symlinks point at, in place (no event in the watched directory). */
  rewrite(raw: Record<string, unknown> | string): void;
  /** Swaps ..data to a new directory, as the kubelet does on a ConfigMap update. */
  swap(raw: Record<string, unknown>): void;
  get(path: string, headers?: Record<string, string>): ReturnType<typeof send>;
  metrics(): Promise<Map<string, number>>;
  /** Waits for a log line containing `text`, after `from` characters of output. */
  logged(text: string, from?: number): Promise<string>;
}

function baseConfig(storePath: string, overrides: Record<string, unknown> = {}) {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstream.url, stripPrefix: '/model' },
    store: { type: 'file', file: { path: storePath } },
    routes: TEST_ROUTES,
    log: { level: 'info' },
    ...overrides,
  };
}

async function start(overrides: Record<string, unknown> = {}): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-reload-'));
  const storePath = join(dir, 'store', 'keygate.json');
  const initial = baseConfig(storePath, overrides);
  let generation = 0;
  const writeGeneration = (text: string): string => {
    const target = join(dir, `..gen_${++generation}`);
    mkdirSync(target);
    writeFileSync(join(target, 'keygate.yaml'), text);
    return target;
  };
  symlinkSync(writeGeneration(stringify(initial)), join(dir, '..data'));
  symlinkSync(join('..data', 'keygate.yaml'), join(dir, 'keygate.yaml'));
  const { key } = await mintKey(parseConfig(stringify(initial), 'test'), 'ops', 'reader');
  const serve = await spawnServe(join(dir, 'keygate.yaml'));
  onTestFinished(async () => {
    await serve.stop('SIGKILL');
  });
  const current = () => join(dir, `..gen_${generation}`, 'keygate.yaml');
  return {
    serve,
    key,
    dir,
    rewrite: (raw) =>
      writeFileSync(current(), typeof raw === 'string' ? raw : stringify({ ...initial, ...raw })),
    swap: (raw) => {
      const target = writeGeneration(stringify({ ...initial, ...raw }));
      symlinkSync(target, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    },
    get: (path, headers = {}) =>
      send(serve.url, path, { headers: { 'x-api-key': key, ...headers } }),
    metrics: async () => parsePrometheusText((await send(serve.opsUrl, '/metrics')).text),
    logged: async (text, from = 0) => {
      let line = '';
      await until(
        () => {
          line =
            serve
              .output()
              .slice(from)
              .split('\n')
              .find((l) => l.includes(text)) ?? '';
          return line !== '';
        },
        `a log line with "${text}"`,
        10_000,
      );
      return line;
    },
  };
}

const RELOADS = 'keygate_config_reloads_total';

describe('config reload in a running keygate (SIGHUP)', () => {
  it('a route removed from the file is refused (403) after SIGHUP; the other routes still work', async () => {
    const kg = await start();
    expect((await kg.get('/model/assets')).status).toBe(200);
    expect((await kg.get('/model/allocation/x')).status).toBe(200);
    const mark = kg.serve.output().length;
    kg.rewrite({ routes: TEST_ROUTES.filter((r) => r.name !== 'assets') });
    kg.serve.child.kill('SIGHUP');
    const line = JSON.parse(await kg.logged('config reloaded', mark)) as Record<string, unknown>;
    expect(line).toMatchObject({ trigger: 'signal', applied: ['routes'], needs_restart: [] });
    const refused = await kg.get('/model/assets');
    expect(refused.status).toBe(403);
    expect(refused.json.error).toBe('route_not_allowed');
    expect((await kg.get('/model/allocation/x')).status).toBe(200);
    const m = await kg.metrics();
    expect(m.get(series(RELOADS, { result: 'ok' }))).toBe(1);
    expect(m.get('keygate_config_last_reload_successful')).toBe(1);
    expect(kg.serve.child.exitCode).toBeNull(); // SIGHUP no longer ends the process
  });

  it('a broken file on SIGHUP keeps the old routes serving, logs the config-check message and counts invalid', async () => {
    const kg = await start();
    const mark = kg.serve.output().length;
    kg.rewrite({ routes: [{ ...TEST_ROUTES[1], methods: ['FETCH'] }] });
    kg.serve.child.kill('SIGHUP');
    const line = JSON.parse(await kg.logged('config reload refused', mark)) as Record<
      string,
      unknown
    >;
    expect(line.level).toBe('error');
    expect(line.msg).toContain('routes[0].methods[0]: expected one of GET');
    expect(line.msg).toContain(join(kg.dir, 'keygate.yaml'));
    expect((await kg.get('/model/assets')).status).toBe(200);
    expect((await kg.get('/model/allocation/x')).status).toBe(200);
    // Not YAML at all: the same.
    kg.rewrite('routes: [');
    kg.serve.child.kill('SIGHUP');
    await until(
      async () => (await kg.metrics()).get(series(RELOADS, { result: 'invalid' })) === 2,
      'second invalid',
    );
    expect((await kg.get('/model/assets')).status).toBe(200);
    const m = await kg.metrics();
    expect(m.get(series(RELOADS, { result: 'ok' }))).toBe(0);
    expect(m.get('keygate_config_last_reload_successful')).toBe(0);
  });

  it("a role's scopes reduced: a key's cached allow is refused after the reload", async () => {
    const kg = await start();
    // Twice: the second answer comes from the verified-key cache.
    expect((await kg.get('/model/assets')).status).toBe(200);
    expect((await kg.get('/model/assets')).status).toBe(200);
    const mark = kg.serve.output().length;
    kg.rewrite({
      roles: { admin: ['read', 'write', 'admin'], member: ['read', 'write'], reader: [] },
    });
    kg.serve.child.kill('SIGHUP');
    await kg.logged('config reloaded', mark);
    const refused = await kg.get('/model/assets');
    expect(refused.status).toBe(403);
    expect(refused.json.error).toBe('insufficient_scope');
  });

  it('an identity header rename applies to the next forwarded request', async () => {
    const kg = await start();
    upstream.reset();
    await kg.get('/model/assets');
    expect(upstream.requests.at(-1)?.headers['x-keygate-account']).toBe('ops');
    const mark = kg.serve.output().length;
    kg.rewrite({ identityHeaders: { account: 'X-Tenant' } });
    kg.serve.child.kill('SIGHUP');
    await kg.logged('config reloaded', mark);
    // A client's own X-Tenant is dropped like any identity header: keygate's is the only one.
    expect((await kg.get('/model/assets', { 'x-tenant': 'forged' })).status).toBe(200);
    const seen = upstream.requests.at(-1);
    expect(seen?.headers['x-tenant']).toBe('ops');
    expect(seen?.headers['x-keygate-account']).toBeUndefined();
    expect(seen?.headers['x-keygate-key-id']).toBeDefined();

    // Renamed again: the upstream may still trust X-Tenant for a while, so a client's copy of
    // it is dropped too, not only the x-keygate-* family.
    const mark2 = kg.serve.output().length;
    kg.rewrite({ identityHeaders: { account: 'X-Org' } });
    kg.serve.child.kill('SIGHUP');
    await kg.logged('config reloaded', mark2);
    expect(
      (await kg.get('/model/assets', { 'x-tenant': 'forged', 'X-TENANT': 'again' })).status,
    ).toBe(200);
    const after = upstream.requests.at(-1);
    expect(after?.headers['x-org']).toBe('ops');
    expect(after?.headers['x-tenant']).toBeUndefined();
  });

  it('listen.port changed: "needs a restart" is logged by path, keygate still serves on the old port', async () => {
    const kg = await start();
    const mark = kg.serve.output().length;
    kg.rewrite({
      listen: { host: '127.0.0.1', port: kg.serve.port === 1 ? 2 : 1 },
      routes: TEST_ROUTES.filter((r) => r.name !== 'assets'),
    });
    kg.serve.child.kill('SIGHUP');
    const warn = JSON.parse(await kg.logged('needs a restart', mark)) as Record<string, unknown>;
    expect(warn).toMatchObject({
      level: 'warn',
      path: 'listen.port',
      msg: 'config reload: listen.port needs a restart; still using the old value',
    });
    await kg.logged('config reloaded', mark);
    // Same port, and the rest of the file applied.
    expect((await kg.get('/model/allocation/x')).status).toBe(200);
    expect((await kg.get('/model/assets')).status).toBe(403);
  });
});

describe('config reload in a running keygate (file watcher)', () => {
  it('a ConfigMap-style update (..data swapped) reloads without SIGHUP; a touch does not', async () => {
    const kg = await start();
    expect((await kg.get('/model/assets')).status).toBe(200);
    kg.swap({ routes: TEST_ROUTES.filter((r) => r.name !== 'assets') });
    await until(
      async () => (await kg.get('/model/assets')).status === 403,
      'the route refused',
      8000,
    );
    expect((await kg.get('/model/allocation/x')).status).toBe(200);
    const line = JSON.parse(await kg.logged('config reloaded')) as Record<string, unknown>;
    expect(line.trigger).toBe('watch');
    // The same bytes again (a touch, or the kubelet re-linking): counted unchanged, not applied.
    kg.swap({ routes: TEST_ROUTES.filter((r) => r.name !== 'assets') });
    await until(
      async () => ((await kg.metrics()).get(series(RELOADS, { result: 'unchanged' })) ?? 0) >= 1,
      'an unchanged reload',
    );
    expect((await kg.metrics()).get(series(RELOADS, { result: 'ok' }))).toBe(1);
  });
});
