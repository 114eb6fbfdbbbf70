import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { secretHalf } from '../helpers/captured-logs.js';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { type HttpResult, rawHttp } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

// DESIGN §12 invariant 5 through real sockets: a key in the URL (in any encoding) or in a
// forwarded header is refused before credentials are even looked at, and no key — raw,
// encoded, glued to other characters, or smuggled in as a request id — reaches the upstream,
// an error body or a log line. The suite-wide oracle (leak-check.ts) checks the same again.

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
let valid: string; // the key the caller authenticates with
let planted: string; // the key that must not leave

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  gw = await startGateway({
    config: testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: redis.url } },
      log: { level: 'trace' },
    }),
  });
  valid = (await gw.issue('leaks', 'reader')).key;
  planted = (await gw.issue('leaks', 'reader')).key;
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

beforeEach(() => upstream.reset());

const pct = (c: string, lower = false) => {
  const hex = c.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${lower ? hex : hex.toUpperCase()}`;
};
const encodeAll = (text: string, lower = false) => [...text].map((c) => pct(c, lower)).join('');

async function get(target: string, headers: string[] = []): Promise<HttpResult> {
  const lines = [`GET ${target} HTTP/1.1`, 'Host: t', ...headers, 'Connection: close'];
  return rawHttp(gw.port, lines.join('\r\n'));
}

/** Neither key nor secret half anywhere keygate wrote or sent (plain `includes`). */
function expectNowhere(key: string, bodies: string[]) {
  const secret = secretHalf(key);
  for (const text of [
    ...gw.logs.raw,
    ...bodies,
    ...upstream.requests.map((r) => `${r.url}\n${r.rawHeaders.join('\n')}`),
  ]) {
    expect(text.includes(key), text).toBe(false);
    expect(text.includes(secret), text).toBe(false);
  }
}

describe('a key in the URL, percent-encoded', () => {
  const encodings: Array<[string, (k: string) => string]> = [
    ['separators encoded (kg%5F…)', (k) => k.replaceAll('_', '%5F')],
    ['every character encoded', (k) => encodeAll(k)],
    ['every character encoded, lower-case hex', (k) => encodeAll(k, true)],
    ['double-encoded separators (kg%255F…)', (k) => k.replaceAll('_', '%255F')],
    ['every character double-encoded', (k) => encodeAll(k).replaceAll('%', '%25')],
    ['raw, glued to word characters (a_<key>x)', (k) => `a_${k}x`],
  ];
  const credentials: Array<[string, () => string[]]> = [
    ['with a valid key in X-API-KEY', () => [`X-API-KEY: ${valid}`]],
    ['with no credential at all', () => []],
    ['with an invalid credential', () => ['Authorization: Bearer nope']],
  ];

  for (const [encoding, encode] of encodings) {
    for (const [credName, creds] of credentials) {
      it(`${encoding}, in the query and in the path, ${credName}: 400 credential_in_url, nothing forwarded or logged`, async () => {
        const before = gw.logs.access().length;
        const bodies: string[] = [];
        for (const target of [
          `/model/allocation?window=1d&k=${encode(planted)}`,
          `/model/allocation/${encode(planted)}`,
          `/model/allocation/${encode(planted)}?k=${encode(planted)}`,
        ]) {
          const res = await get(target, creds());
          bodies.push(res.text);
          // A path the normaliser refuses (an encoded "%") may be refused as invalid_path
          // only if the key check let it through: it must not.
          expect(res.status, target).toBe(400);
          expect(res.json.error, target).toBe('credential_in_url');
        }
        expect(upstream.requests).toHaveLength(0);
        const access = await gw.logs.waitForAccess(before + 3);
        for (const line of access.slice(before)) expect(line.error).toBe('credential_in_url');
        expectNowhere(planted, bodies);
        expectNowhere(valid, bodies);
      });
    }
  }

  it('look-alikes still pass: a wrong checksum and "kg_7d" are forwarded', async () => {
    const lookAlike = `${planted.slice(0, -1)}${planted.endsWith('A') ? 'B' : 'A'}`;
    const res = await get(`/model/allocation?window=kg_7d&x=${encodeAll(lookAlike)}`, [
      `X-API-KEY: ${valid}`,
    ]);
    expect(res.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
  });
});

describe('a key in a forwarded header', () => {
  it.each([
    ['X-Debug', (k: string) => k],
    ['Referer', (k: string) => `https://dash.example/?k=${k.replaceAll('_', '%255F')}`],
    ['User-Agent', (k: string) => `ci/${k}x`],
    ['X_Debug', (k: string) => encodeAll(k)],
    ['__proto__', (k: string) => k],
  ])('%s: 400 credential_in_header, nothing forwarded or logged', async (name, value) => {
    const res = await get('/model/allocation', [
      `X-API-KEY: ${valid}`,
      `${name}: ${value(planted)}`,
    ]);
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('credential_in_header');
    expect(upstream.requests).toHaveLength(0);
    // Once this request's access line exists: before it, the logs would not hold it to check.
    expect((await gw.logs.accessFor(res.headers['x-request-id'])).error).toBe(
      'credential_in_header',
    );
    expectNowhere(planted, [res.text]);
  });
});

describe('a key as a header name', () => {
  // Forwarded names are lower-cased, which also hides them from a case-sensitive leak search:
  // the upstream record is searched case-insensitively here.
  it.each([
    ['the whole key as the name', (k: string) => `${k}: 1`],
    ['split at a ":" inside the secret', (k: string) => `${k.slice(0, 30)}: ${k.slice(30)}`],
  ])('%s: 400 credential_in_header, nothing forwarded', async (_what, line) => {
    const res = await get('/model/allocation', [`X-API-KEY: ${valid}`, line(planted)]);
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('credential_in_header');
    expect(upstream.requests).toHaveLength(0);
    expect((await gw.logs.accessFor(res.headers['x-request-id'])).error).toBe(
      'credential_in_header',
    );
    expectNowhere(planted, [res.text]);
    const lower = secretHalf(planted).toLowerCase().slice(-20);
    for (const r of upstream.requests) {
      expect(r.rawHeaders.join('\n').toLowerCase().includes(lower)).toBe(false);
    }
  });
});

describe('a request id carrying a key or a secret', () => {
  it('a key as X-Request-Id is refused and neither echoed nor logged', async () => {
    const before = gw.logs.access().length;
    const res = await get('/model/allocation', [`X-API-KEY: ${valid}`, `X-Request-Id: ${planted}`]);
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('credential_in_header');
    expect(res.headers['x-request-id']).not.toBe(planted);
    expect(res.json.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(upstream.requests).toHaveLength(0);
    await gw.logs.waitForAccess(before + 1);
    expectNowhere(planted, [res.text, JSON.stringify(res.headers)]);
  });

  it('an id holding a secret-length run (not a key) is replaced: not forwarded, echoed or logged', async () => {
    const before = gw.logs.access().length;
    const secretLike = `trace-${secretHalf(planted).slice(0, 43)}`;
    const res = await get('/model/allocation', [
      `X-API-KEY: ${valid}`,
      `X-Request-Id: ${secretLike}`,
    ]);
    expect(res.status).toBe(200);
    const replaced = res.headers['x-request-id'];
    expect(replaced).toMatch(/^[0-9a-f-]{36}$/);
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]?.headers['x-request-id']).toBe(replaced);
    const access = await gw.logs.waitForAccess(before + 1);
    expect(access.at(-1)?.request_id).toBe(replaced);
    for (const text of [
      ...gw.logs.raw,
      res.text,
      JSON.stringify(upstream.requests[0]?.rawHeaders),
    ]) {
      expect(text.includes(secretLike.slice(6))).toBe(false);
    }
  });

  it('an ordinary tracing id is still kept end to end', async () => {
    const res = await get('/model/allocation', [
      `X-API-KEY: ${valid}`,
      'X-Request-Id: ci-run-42.step_3',
    ]);
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toBe('ci-run-42.step_3');
    expect(upstream.requests[0]?.headers['x-request-id']).toBe('ci-run-42.step_3');
  });
});

describe('log masking through the real pipeline', () => {
  it('a key of another prefix, glued to word characters in the path, is forwarded but masked in the access line', async () => {
    const foreign = `acme_${'A1b2C3d4E5f6'}_${'Z'.repeat(49)}`; // not this deployment's: not refused
    const before = gw.logs.access().length;
    const res = await get(`/model/allocation/a_${foreign}x`, [`X-API-KEY: ${valid}`]);
    expect(res.status).toBe(200);
    const access = await gw.logs.waitForAccess(before + 1);
    expect(access.at(-1)?.path).toBe('/model/allocation/a_acme_A1b2C3d4E5f6_[REDACTED]');
    for (const line of gw.logs.raw) expect(line.includes('Z'.repeat(43))).toBe(false);
  });
});
