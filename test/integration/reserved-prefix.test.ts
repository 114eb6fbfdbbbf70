import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { rawHttp, send } from '../helpers/http.js';
import { RecordingUpstream } from '../helpers/upstream.js';

/**
 * A catch-all rule ("/**") is allowed in config: /_keygate is dispatched to the admin API
 * before any route rule is consulted, so no rule — however wide — forwards keygate's own
 * prefix upstream. These tests hold that promise.
 */
let upstream: RecordingUpstream;
let gw: Gateway;
const keys: Record<string, string> = {};

beforeAll(async () => {
  upstream = await RecordingUpstream.start();
  const dir = mkdtempSync(join(tmpdir(), 'keygate-prefix-'));
  gw = await startGateway({
    config: testConfig(upstream.url, {
      store: { type: 'file', file: { path: join(dir, 'keys.json') } },
      routes: [{ name: 'everything', methods: ['GET', 'POST'], path: '/**', scopes: ['read'] }],
    }),
  });
  keys.reader = (await gw.issue('dash', 'reader')).key;
  keys.admin = (await gw.issue('ops', 'admin')).key;
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
});

beforeEach(() => upstream.reset());

describe('a "/**" rule never reaches /_keygate', () => {
  const cases: Array<[role: string, path: string, status: number, code: string]> = [
    ['reader', '/_keygate', 403, 'insufficient_scope'],
    ['reader', '/_keygate/v1/service-accounts', 403, 'insufficient_scope'],
    ['reader', '/_keygate/anything', 403, 'insufficient_scope'],
    ['reader', '/%5Fkeygate/v1/service-accounts', 403, 'insufficient_scope'],
    ['reader', '/%5fkeygate/x', 403, 'insufficient_scope'],
    ['admin', '/_keygate/anything', 404, 'not_found'],
    ['admin', '/_keygate/v2/service-accounts', 404, 'not_found'],
    ['admin', '/%5Fkeygate/anything', 404, 'not_found'],
  ];
  for (const [role, path, status, code] of cases) {
    it(`${role} GET ${path} → ${status} ${code}, nothing forwarded`, async () => {
      const res = await send(gw.url, path, { headers: { 'x-api-key': keys[role] as string } });
      expect(res.status).toBe(status);
      expect(res.json.error).toBe(code);
      expect(upstream.requests).toHaveLength(0);
    });
  }

  it('dot segments cannot walk into /_keygate through the catch-all', async () => {
    for (const path of ['/x/../_keygate/v1/service-accounts', '/x/%2e%2e/_keygate/v1']) {
      const res = await rawHttp(
        gw.port,
        `GET ${path} HTTP/1.1\r\nhost: x\r\nx-api-key: ${keys.reader}\r\nconnection: close\r\n\r\n`,
      );
      expect(res.status).toBe(400);
    }
    expect(upstream.requests).toHaveLength(0);
  });

  it('other paths go through the catch-all', async () => {
    const res = await send(gw.url, '/other/path', {
      headers: { 'x-api-key': keys.reader as string },
    });
    expect(res.status).toBe(200);
    expect(upstream.requests.map((r) => r.url)).toEqual(['/other/path']);
  });
});
