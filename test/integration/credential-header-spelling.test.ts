import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { type HttpResult, rawHttp } from '../helpers/http.js';
import { RecordingUpstream } from '../helpers/upstream.js';

// X-API-KEY spelled with "_" is the same header to servers that fold "_" into "-" (CGI/WSGI,
// nginx with underscores_in_headers, Envoy by default) and another header to keygate and Go.
// keygate refuses it rather than let two hops read two different keys, and the key it carries
// never reaches the upstream.

let dir: string;
let upstream: RecordingUpstream;
let gw: Gateway;
let reader: string;
let other: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keygate-spelling-'));
  upstream = await RecordingUpstream.start();
  gw = await startGateway({
    config: testConfig(upstream.url, {
      store: { type: 'file', file: { path: join(dir, 'keygate.json') } },
      keys: { argon2: { memoryCost: 4096, timeCost: 1 } },
    }),
  });
  reader = (await gw.issue('dash', 'reader')).key;
  other = (await gw.issue('ops', 'admin')).key;
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(() => upstream.reset());

function get(headers: string) {
  return rawHttp(
    gw.port,
    `GET /model/allocation HTTP/1.1\r\nHost: keygate.test\r\n${headers}\r\nConnection: close`,
  );
}

/** Checked once the access line of `res` (its request's last log line) has been written. */
async function expectNowhere(res: HttpResult, ...secrets: string[]) {
  await gw.logs.accessFor(res.headers['x-request-id']);
  for (const secret of secrets) {
    for (const line of gw.logs.raw) expect(line).not.toContain(secret);
    for (const r of upstream.requests) expect(JSON.stringify(r)).not.toContain(secret);
  }
}

describe('X-API-KEY spelled with "_"', () => {
  it.each([
    ['X_API_KEY', 'X_API_KEY'],
    ['x_api_key', 'x_api_key'],
    ['X-API_KEY', 'X-API_KEY'],
  ])(
    'a valid key sent only as %s: 400 ambiguous_credentials, the upstream sees nothing',
    async (_n, name) => {
      const res = await get(`${name}: ${reader}`);
      expect(res.status).toBe(400);
      expect(res.json.error).toBe('ambiguous_credentials');
      expect(upstream.requests).toHaveLength(0);
      await expectNowhere(res, reader);
    },
  );

  it.each([
    ['the same key, X-API-KEY first', () => `X-API-KEY: ${reader}\r\nX_API_KEY: ${reader}`],
    ['the same key, X_API_KEY first', () => `X_API_KEY: ${reader}\r\nX-API-KEY: ${reader}`],
    ["another account's key in X_API_KEY", () => `X-API-KEY: ${reader}\r\nX_API_KEY: ${other}`],
    ['Bearer plus X_API_KEY', () => `Authorization: Bearer ${reader}\r\nx_api_key: ${other}`],
  ])(
    'X-API-KEY with %s: 400 ambiguous_credentials, the upstream sees nothing',
    async (_n, headers) => {
      const res = await get(headers());
      expect(res.status).toBe(400);
      expect(res.json.error).toBe('ambiguous_credentials');
      expect(upstream.requests).toHaveLength(0);
      await expectNowhere(res, reader, other);
    },
  );

  it('the hyphenated spelling alone still works, and the key is not forwarded', async () => {
    const res = await get(`x-Api-kEY: ${reader}`);
    expect(res.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]?.headers['x-keygate-account']).toBe('dash');
    await expectNowhere(res, reader);
  });
});
