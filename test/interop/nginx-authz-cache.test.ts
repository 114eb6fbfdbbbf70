import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { authzDataPlaneCases } from '../helpers/authz-data-plane.js';
import { type Gateway, startGateway, TEST_ACTOR, testConfig } from '../helpers/gateway.js';
import { rawHttp, send } from '../helpers/http.js';
import { type RunningNginx, startNginx } from '../helpers/nginx.js';
import { RedisServer } from '../helpers/redis-server.js';
import { until } from '../helpers/until.js';
import { RecordingUpstream } from '../helpers/upstream.js';

// The shipped caching snippet, exactly as an operator copies it: the load_module line, the
// http { } lines and the "protected location" block un-commented, the internal auth location
// as is. Filled in: the two addresses, where the njs file lies, and a fresh cache directory
// (on /dev/shm like the shipped one, one per nginx).
const SNIPPET = readFileSync(
  new URL('../../deploy/authz/nginx/keygate-authz-cache.conf', import.meta.url),
  'utf8',
);
const KEY_JS = fileURLToPath(
  new URL('../../deploy/authz/nginx/keygate-authz-cache-key.js', import.meta.url),
);
function commented(from: string, to: string): string {
  const start = SNIPPET.indexOf(from);
  const end = to === '' ? SNIPPET.length : SNIPPET.indexOf(to, start);
  expect(start, from).toBeGreaterThan(-1);
  expect(end, to).toBeGreaterThan(start);
  return SNIPPET.slice(start, end)
    .split('\n')
    .filter((l) => l.startsWith('#   '))
    .map((l) => l.slice(4))
    .join('\n');
}
/**
 * The two cache-key builders the snippet ships: set-misc's HMAC-SHA256 (as written) and the njs
 * alternative it describes (its two set_* lines deleted, njs loaded and js_set in http { }).
 */
type KeyBuilder = 'set-misc' | 'njs';
const NJS_MODULE = 'load_module /usr/lib/nginx/modules/ngx_http_js_module.so;';

function shipped(keygate: string, aggregator: string, cacheDir: string, builder: KeyBuilder) {
  const fill = (text: string) =>
    text
      .replaceAll('KEYGATE', keygate)
      .replaceAll('AGGREGATOR', aggregator)
      .replaceAll('/etc/nginx/keygate-authz-cache-key.js', KEY_JS)
      .replaceAll('/dev/shm/keygate-authz', cacheDir);
  let authLocation = SNIPPET.slice(
    SNIPPET.indexOf('location = /_keygate_authz'),
    SNIPPET.indexOf('# protected location'),
  );
  const setLines = authLocation.split('\n').filter((l) => /^\s*set_[a-z0-9_]+ /.test(l));
  expect(setLines).toHaveLength(2);
  if (builder === 'njs') {
    for (const line of setLines) authLocation = authLocation.replace(`${line}\n`, '');
  }
  const http = commented('# In http { }', '# Without set-misc');
  return {
    main:
      builder === 'set-misc'
        ? fill(commented('# Needs the set-misc module', '# In http { }'))
        : NJS_MODULE,
    http: fill(
      builder === 'set-misc' ? http : `${http}\n${commented('# Without set-misc', '# It hashes')}`,
    ),
    server: fill(`${authLocation}\n${commented('# protected location', '')}`),
  };
}

interface Plane {
  gw: Gateway;
  nginx: RunningNginx;
  url: string;
  cacheDir: string;
  closed?: boolean;
  /** Authz requests keygate has received: counted by keygate's own server. */
  asked(): number;
}

for (const builder of ['set-misc', 'njs'] as const) {
  describe(`cache key built with ${builder}`, () => {
    let redis: RedisServer;
    let upstream: RecordingUpstream;
    const planes: Plane[] = [];

    async function plane(cacheTtl: string): Promise<Plane> {
      const gw = await startGateway({
        config: testConfig(upstream.url, {
          mode: 'authz',
          authz: { cacheTtl },
          store: { type: 'redis', redis: { url: redis.url } },
          trustedProxies: ['127.0.0.1/32'],
        }),
      });
      let asked = 0;
      gw.app.server.on('request', () => {
        asked++;
      });
      const cacheDir = mkdtempSync('/dev/shm/keygate-authz-test-');
      const conf = shipped(`127.0.0.1:${gw.port}`, new URL(upstream.url).host, cacheDir, builder);
      const nginx = await startNginx(() => conf.server, { main: conf.main, http: conf.http });
      const p: Plane = {
        gw,
        nginx,
        url: `http://127.0.0.1:${nginx.port}`,
        cacheDir,
        asked: () => asked,
      };
      planes.push(p);
      return p;
    }

    let ttl30: Plane;
    let ttl1: Plane;
    let ttl0: Plane;
    let reader1: string;
    /** Every key these tests issued: none may appear in any cache file. */
    const issued: string[] = [];

    async function issue(p: Plane, account: string): Promise<{ key: string; id: string }> {
      const k = await p.gw.issue(account, 'reader');
      issued.push(k.key);
      return k;
    }

    beforeAll(async () => {
      redis = await RedisServer.start();
      upstream = await RecordingUpstream.start();
      ttl30 = await plane('30s');
      ttl1 = await plane('1s');
      ttl0 = await plane('0');
      reader1 = (await issue(ttl1, 'nginx-cache-team')).key;
    });

    afterAll(async () => {
      for (const p of planes) {
        await p.nginx.stop();
        if (!p.closed) await p.gw.close();
        rmSync(p.cacheDir, { recursive: true, force: true });
      }
      await upstream?.close();
      await redis?.destroy();
    });

    describe('nginx auth_request with the caching snippet (authz.cacheTtl 1s): the shared cases', () => {
      authzDataPlaneCases(
        () => ({
          url: ttl1.url,
          upstream,
          gw: ttl1.gw,
          account: 'nginx-cache-team',
          reader: reader1,
        }),
        {
          keygateBodies: false,
          revocationBoundMs: 1000,
          upstreamPath: (p) => p.replace(/^\/model/, ''),
        },
      );
    });

    describe('nginx caching snippet: what is cached, under which key, for how long', () => {
      it('a second identical request is answered from the cache: keygate is asked once, the Aggregator still gets keygate identity', async () => {
        const { key } = await issue(ttl30, 'cache-hit');
        upstream.reset();
        const before = ttl30.asked();
        for (let i = 0; i < 3; i++) {
          const res = await send(ttl30.url, '/model/allocation?window=1d', {
            headers: { 'x-api-key': key },
          });
          expect(res.status).toBe(200);
        }
        expect(ttl30.asked() - before).toBe(1);
        expect(upstream.requests).toHaveLength(3);
        for (const seen of upstream.requests) {
          expect(seen.headers['x-keygate-account']).toBe('cache-hit');
          expect(seen.headers['x-keygate-role']).toBe('reader');
          expect(seen.headers['x-api-key']).toBeUndefined();
        }
      });

      it('a different method, path, query, key or credential header is never served a cached allow', async () => {
        const { key } = await issue(ttl30, 'cache-key');
        const other = (await issue(ttl30, 'cache-key-other')).key;
        const path = '/model/allocation?window=1d';
        const primed = await send(ttl30.url, path, { headers: { 'x-api-key': key } });
        expect(primed.status).toBe(200);
        const basic = Buffer.from(`${key}:`).toString('base64');
        const variants: Array<{
          method?: string;
          path: string;
          headers: Record<string, string>;
          status: number;
          asked?: number;
        }> = [
          // Routes differ by method: keygate refuses POST here, a cached GET allow must not pass it.
          { method: 'POST', path, headers: { 'x-api-key': key }, status: 403 },
          { method: 'DELETE', path, headers: { 'x-api-key': key }, status: 403 },
          { path: '/model/etl/run', headers: { 'x-api-key': key }, status: 403 },
          { path: '/model/allocation?window=2d', headers: { 'x-api-key': key }, status: 200 },
          { path, headers: { 'x-api-key': `${key}x` }, status: 401 },
          { path, headers: { 'x-api-key': key.slice(0, -1) }, status: 401 },
          { path, headers: { 'x-api-key': other }, status: 200 },
          { path, headers: {}, status: 401 },
          { path, headers: { authorization: `Bearer ${key}` }, status: 200 },
          { path, headers: { authorization: `Basic ${basic}` }, status: 200 },
          // A client's own forms of the original request are hidden from keygate by the snippet
          // (only nginx names it), so they change nothing: the cached allow for what the request
          // really is serves it, without asking keygate.
          {
            path,
            headers: {
              'x-api-key': key,
              'x-forwarded-uri': '/model/etl/run',
              'x-forwarded-method': 'POST',
              'x-original-url': 'http://h/model/etl/run',
            },
            status: 200,
            asked: 0,
          },
        ];
        for (const v of variants) {
          const before = ttl30.asked();
          const res = await send(ttl30.url, v.path, {
            ...(v.method ? { method: v.method } : {}),
            headers: v.headers,
          });
          expect(
            ttl30.asked() - before,
            JSON.stringify({ ...v, headers: Object.keys(v.headers) }),
          ).toBe(v.asked ?? 1);
          expect(res.status, `${v.method ?? 'GET'} ${v.path}`).toBe(v.status);
        }
      });

      it('headers keygate does not read (hostile names too) and the header name case share the cached allow', async () => {
        const { key } = await issue(ttl30, 'cache-share');
        const path = '/model/assets?window=7d';
        expect((await send(ttl30.url, path, { headers: { 'x-api-key': key } })).status).toBe(200);
        const before = ttl30.asked();
        const head = [
          `GET ${path} HTTP/1.1`,
          'Host: x',
          `X-Api-Key: ${key}`,
          'User-Agent: other',
          '__proto__: {"x-api-key":"y"}',
          'constructor: x',
          'hasOwnProperty: x',
          '123: x',
          'X-Request-Id: another',
          'Connection: close',
          '',
          '',
        ].join('\r\n');
        expect((await rawHttp(ttl30.nginx.port, head)).status).toBe(200);
        expect(ttl30.asked() - before).toBe(0);
        expect(ttl30.nginx.errorLog()).not.toContain('js exception');
      });

      it('a repeated X-API-KEY after a cached key: njs asks keygate (refused); set-misc (nginx < 1.23 hashes the first copy) serves that key’s allow and strips both', async () => {
        const { key } = await issue(ttl30, 'cache-dup');
        expect(
          (await send(ttl30.url, '/model/assets', { headers: { 'x-api-key': key } })).status,
        ).toBe(200);
        upstream.reset();
        const before = ttl30.asked();
        const head = `GET /model/assets HTTP/1.1\r\nHost: x\r\nX-API-KEY: ${key}\r\nX-API-KEY: other\r\nConnection: close\r\n\r\n`;
        const res = await rawHttp(ttl30.nginx.port, head);
        if (builder === 'njs') {
          expect(ttl30.asked() - before).toBe(1);
          expect(res.status).toBe(500);
          expect(upstream.requests).toHaveLength(0);
        } else {
          // Documented in the snippet: the caller holds the first key, gets its identity, and
          // neither copy reaches the Aggregator.
          expect(ttl30.asked() - before).toBe(0);
          expect(res.status).toBe(200);
          const seen = upstream.requests[0];
          expect(seen?.headers['x-keygate-account']).toBe('cache-dup');
          expect(JSON.stringify(seen?.rawHeaders)).not.toMatch(/x-api-key|other/i);
        }
      });

      it('refusals are never cached: each invalid key, refused route and missing key asks keygate again', async () => {
        const { key } = await issue(ttl30, 'cache-refusals');
        for (const c of [
          { path: '/model/allocation', headers: { 'x-api-key': `${key}x` }, status: 401 },
          { path: '/model/getProductKey', headers: { 'x-api-key': key }, status: 403 },
          { path: '/model/allocation', headers: {}, status: 401 },
        ]) {
          const before = ttl30.asked();
          for (let i = 0; i < 2; i++)
            expect((await send(ttl30.url, c.path, { headers: c.headers })).status).toBe(c.status);
          expect(ttl30.asked() - before, c.path).toBe(2);
        }
      });

      it('revocation: a revoked key still passes from the cache within authz.cacheTtl (30s)', async () => {
        const { key, id } = await issue(ttl30, 'cache-revoked');
        const headers = { 'x-api-key': key };
        expect((await send(ttl30.url, '/model/allocation', { headers })).status).toBe(200);
        await ttl30.gw.app.keys.revokeKey(TEST_ACTOR, 'cache-revoked', id);
        const before = ttl30.asked();
        expect((await send(ttl30.url, '/model/allocation', { headers })).status).toBe(200);
        expect(ttl30.asked() - before).toBe(0);
        // keygate itself refuses it at once: the bound is the data plane's cache, nothing else.
        expect((await send(ttl30.url, '/model/assets', { headers })).status).toBe(401);
      });

      it('revocation: with authz.cacheTtl 1s the revoked key is refused once the cached allow expires', async () => {
        const { key, id } = await issue(ttl1, 'cache-revoked-1s');
        const headers = { 'x-api-key': key };
        expect((await send(ttl1.url, '/model/allocation', { headers })).status).toBe(200);
        await ttl1.gw.app.keys.revokeKey(TEST_ACTOR, 'cache-revoked-1s', id);
        await until(
          async () => (await send(ttl1.url, '/model/allocation', { headers })).status === 401,
          'the cached allow to expire',
          3000,
        );
        expect((await send(ttl1.url, '/model/allocation', { headers })).status).toBe(401);
      });

      it('authz.cacheTtl 0: nothing is cached, every request asks keygate', async () => {
        const { key } = await issue(ttl0, 'cache-off');
        const before = ttl0.asked();
        for (let i = 0; i < 3; i++) {
          expect(
            (await send(ttl0.url, '/model/allocation', { headers: { 'x-api-key': key } })).status,
          ).toBe(200);
        }
        expect(ttl0.asked() - before).toBe(3);
        expect(filesUnder(ttl0.cacheDir)).toEqual([]);
      });

      it('keygate down: an expired allow is not served stale, the request fails closed (500)', async () => {
        const down = await plane('1s');
        const { key } = await issue(down, 'cache-down');
        const headers = { 'x-api-key': key };
        expect((await send(down.url, '/model/allocation', { headers })).status).toBe(200);
        down.closed = true;
        await down.gw.close();
        await until(
          async () => (await send(down.url, '/model/allocation', { headers })).status === 500,
          'the cached allow to expire with keygate down',
          3000,
        );
      });

      it('backstop: a refusal is never stored even if it carried X-Accel-Expires (an answerer that is not keygate, a future bug)', async () => {
        // A stand-in answerer: whatever status the test asks for, always with X-Accel-Expires.
        let status = 200;
        let asked = 0;
        const answerer = createServer((_req, res) => {
          asked++;
          res.writeHead(status, { 'x-accel-expires': '30', 'content-length': '0' });
          res.end();
        });
        await new Promise<void>((r) => answerer.listen(0, '127.0.0.1', r));
        onTestFinished(() => new Promise<void>((r) => answerer.close(() => r())));
        const cacheDir = mkdtempSync('/dev/shm/keygate-authz-test-');
        onTestFinished(() => rmSync(cacheDir, { recursive: true, force: true }));
        const port = (answerer.address() as AddressInfo).port;
        const conf = shipped(`127.0.0.1:${port}`, new URL(upstream.url).host, cacheDir, builder);
        const nginx = await startNginx(() => conf.server, { main: conf.main, http: conf.http });
        onTestFinished(() => nginx.stop());
        const url = `http://127.0.0.1:${nginx.port}`;
        for (const [i, code] of [401, 403, 429, 500, 503].entries()) {
          status = code;
          const before = asked;
          const path = `/model/allocation?n=${i}`;
          for (let j = 0; j < 2; j++) await send(url, path, { headers: { 'x-api-key': 'k' } });
          expect(asked - before, String(code)).toBe(2);
        }
        // The control: the same answerer's 200 is stored (so the count above means something).
        status = 200;
        const before = asked;
        for (let j = 0; j < 2; j++)
          await send(url, '/model/assets', { headers: { 'x-api-key': 'k' } });
        expect(asked - before).toBe(1);
      });

      it('no file under any cache directory holds a key: raw, percent-encoded, base64 (Basic) or its secret', async () => {
        // Cache one answer for each credential form first, so there is something to look through.
        const { key } = await issue(ttl30, 'cache-disk');
        const basic = Buffer.from(`${key}:`).toString('base64');
        for (const headers of [
          { 'x-api-key': key },
          { authorization: `Bearer ${key}` },
          { authorization: `Basic ${basic}` },
        ]) {
          expect((await send(ttl30.url, '/model/assets', { headers })).status).toBe(200);
        }
        // The key was hashed, not left empty by a failing njs function (which the snippet turns
        // into "no caching", so every test above would still pass on a broken hash).
        for (const p of planes) expect(p.nginx.errorLog()).not.toContain('js exception');
        const files = planes.flatMap((p) => filesUnder(p.cacheDir));
        expect(files.length).toBeGreaterThanOrEqual(3);
        const hex = (s: string) => [...Buffer.from(s)].map((b) => b.toString(16).padStart(2, '0'));
        for (const file of files) {
          const bytes = readFileSync(file);
          const text = bytes.toString('latin1');
          // The cache key nginx wrote is our hash (proof this is the file we think it is).
          expect(text).toMatch(/\nKEY: keygate-authz:[A-Za-z0-9_-]{43}\n/);
          for (const k of issued) {
            const secret = k.slice(k.lastIndexOf('_') + 1);
            const forms = [
              k,
              secret,
              hex(k)
                .map((h) => `%${h}`)
                .join(''),
              hex(k)
                .map((h) => `%${h.toUpperCase()}`)
                .join(''),
              Buffer.from(k).toString('base64'),
              Buffer.from(`${k}:`).toString('base64'),
              Buffer.from(k).toString('base64url'),
            ];
            for (const form of forms)
              expect(text.includes(form), `${file} holds a key`).toBe(false);
          }
        }
      });
    });

    function filesUnder(dir: string): string[] {
      return readdirSync(dir, { recursive: true, encoding: 'utf8' })
        .map((name) => join(dir, name))
        .filter((path) => statSync(path).isFile());
    }
  });
}
