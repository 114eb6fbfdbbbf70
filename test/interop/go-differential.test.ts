import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_STATUS } from '../../src/errors.js';
import { normaliseTarget } from '../../src/policy/normalise-path.js';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { type GoSeen, GoUpstream } from '../helpers/go-upstream.js';
import { type HttpResult, rawHttp } from '../helpers/http.js';

// Differential test: keygate in front of a real Go net/http server (the Aggregator is Go).
// For every request target, either keygate refuses it (a 4xx of its own, and Go sees nothing),
// or Go routes on exactly the path keygate authorised: Go's RequestURI is the authorised path
// (minus stripPrefix) byte for byte, Go's r.URL.Path is its percent-decoding, http.ServeMux
// would neither clean nor redirect it, and a reader key never lands on Go's "/etl/" handler.

const PREFIX = '/model';
const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

let dir: string;
let go: GoUpstream;
let gw: Gateway;
/** The same, with an upstream URL that has a path: forwarded = "/agg" + (path minus /model). */
let based: Gateway;
const BASE = '/agg';
let key: string;
let basedKey: string;
/** How many requests Go has answered; each forwarded request must be exactly the next one. */
let goCount = 0;
const tally = { forwarded: 0, refused: 0 };

beforeAll(async () => {
  go = await GoUpstream.start();
  dir = await mkdtemp(join(tmpdir(), 'keygate-go-diff-'));
  const config = (upstreamUrl: string, file: string) =>
    testConfig(upstreamUrl, {
      store: { type: 'file', file: { path: join(dir, file) } },
      keys: { argon2: { memoryCost: 4096, timeCost: 1 } },
      // First match wins: /model/etl/** needs admin, everything else under /model is open to
      // readers, so most targets are allowed and the comparison has something to compare.
      routes: [
        { name: 'etl', methods: ALL_METHODS, path: `${PREFIX}/etl/**`, scopes: ['admin'] },
        { name: 'model', methods: ALL_METHODS, path: `${PREFIX}/**`, scopes: ['read'] },
      ],
    });
  gw = await startGateway({ config: config(go.url, 'keygate.json') });
  key = (await gw.issue('dash', 'reader')).key;
  based = await startGateway({ config: config(`${go.url}${BASE}`, 'based.json') });
  basedKey = (await based.issue('dash', 'reader')).key;
}, 180_000);

afterAll(async () => {
  await gw?.close();
  await based?.close();
  await go?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Percent-decodes once into bytes, as Go's url.PathUnescape does for a valid path. */
function decodeOnce(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
    if (text[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(text[i] as string, 'utf8'));
    }
  }
  return Buffer.from(bytes);
}

function stripPrefix(path: string): string {
  if (path === PREFIX) return '/';
  return path.startsWith(`${PREFIX}/`) ? path.slice(PREFIX.length) : path;
}

async function probe(method: string, target: string, base = ''): Promise<HttpResult> {
  const [port, k] = base === '' ? [gw.port, key] : [based.port, basedKey];
  return rawHttp(
    port,
    `${method} ${target} HTTP/1.1\r\nHost: keygate.test\r\nX-API-KEY: ${k}\r\nConnection: close`,
  );
}

/** Go's answer, if it was Go's: rawHttp reads bytes as latin1 and does not undo chunking. */
function goSeen(res: HttpResult): Partial<GoSeen> {
  let body = res.text;
  if (/chunked/i.test(String(res.headers['transfer-encoding'] ?? ''))) {
    let out = '';
    let at = 0;
    for (;;) {
      const eol = body.indexOf('\r\n', at);
      const size = Number.parseInt(body.slice(at, eol), 16);
      if (!(size > 0)) break;
      out += body.slice(eol + 2, eol + 2 + size);
      at = eol + 2 + size + 2;
    }
    body = out;
  }
  try {
    return JSON.parse(Buffer.from(body, 'latin1').toString('utf8')) as Partial<GoSeen>;
  } catch {
    return {};
  }
}

/** The differential check for one request; returns whether Go saw it. */
function judge(
  method: string,
  target: string,
  res: HttpResult,
  base = '',
): 'forwarded' | 'refused' {
  const seen = goSeen(res) as GoSeen;
  if (method !== 'HEAD' && seen.go !== true) {
    // Refused by keygate (or by node's parser in front of it): a client error, never a 5xx.
    expect(res.status, `status for ${JSON.stringify(target)}`).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    if (typeof res.json.error === 'string')
      expect(Object.keys(ERROR_STATUS)).toContain(res.json.error);
    tally.refused++;
    return 'refused';
  }
  if (method === 'HEAD') {
    // No body to read Go's view from: HEAD only has to agree with GET on allow or refuse.
    if (res.status === 200) {
      goCount++;
      return 'forwarded';
    }
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    return 'refused';
  }
  goCount++;
  expect(seen.n, 'a refused request reached Go').toBe(goCount);
  expect(res.status).toBe(200);

  // keygate accepted this target, so its normalisation must accept it too: that path is the
  // one the route table matched (handle-request.ts routes on normaliseTarget(req.url).path).
  const authorised = normaliseTarget(target);
  const forwardedPath = base + stripPrefix(authorised.path);
  expect(seen.method).toBe(method);
  // What keygate forwarded is the authorised path, byte for byte, and the query untouched.
  expect(Buffer.from(seen.requestURIHex, 'hex').toString('latin1')).toBe(
    Buffer.from(forwardedPath + authorised.query, 'utf8').toString('latin1'),
  );
  expect(seen.rawQuery).toBe(authorised.query.slice(1));
  // Go routes on the percent-decoding of the authorised path…
  expect(seen.pathHex).toBe(decodeOnce(forwardedPath).toString('hex'));
  // …which is also the decoding of what the client sent (an oracle independent of keygate).
  const clientPath = target.split('?')[0] as string;
  expect(seen.pathHex).toBe(decodeOnce(base + stripPrefix(clientPath)).toString('hex'));
  // …and is valid UTF-8, so a Go handler that reads it as text sees what was authorised.
  const bytes = Buffer.from(seen.pathHex, 'hex');
  expect(
    Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes),
    'Go got bytes that are not UTF-8',
  ).toBe(true);
  // ServeMux would not clean it into another path, and a reader never reaches "/etl".
  expect(seen.muxRedirect).toBe(false);
  expect([`${base}/etl`, `${base}/etl/`]).not.toContain(seen.muxPattern);
  expect(seen.path === `${base}/etl` || seen.path.startsWith(`${base}/etl/`)).toBe(false);
  tally.forwarded++;
  return 'forwarded';
}

// Generated targets: segments built from pieces an attacker would try.
const segmentPiece = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('allocation', 'etl', 'ETL', 'assets', 'a', 'x') },
  { weight: 2, arbitrary: fc.constantFrom('.', '..', '%2e', '%2E%2e', '.%2e', '..;', ';x') },
  { weight: 2, arbitrary: fc.constantFrom('%2f', '%2F', '%5c', '\\', '%00', '%25', '%23') },
  { weight: 2, arbitrary: fc.constantFrom('%65', '%74', '%6C', '%41', '%7e', '-', '_', '~') },
  { weight: 2, arbitrary: fc.constantFrom('%20', '+', '%2B', '!', '$', '&', "'", '(', '*') },
  { weight: 2, arbitrary: fc.constantFrom('%C3%A9', '%e2%82%ac', '%F0%9F%98%80', '%c0%ae') },
  {
    weight: 1,
    arbitrary: fc.constantFrom('%EF%BC%8F', '%E2%80%A4', '%ED%A0%80', '%C3', '%FF'),
  },
  { weight: 1, arbitrary: fc.constantFrom('#', ':', '@', ',', '=', '%3b', '%3F', 'é', '\t') },
  { weight: 3, arbitrary: fc.stringMatching(/^[A-Za-z0-9._~-]{1,6}$/) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, '0')}`),
  },
);
const segment = fc.array(segmentPiece, { minLength: 0, maxLength: 3 }).map((p) => p.join(''));
const path = fc
  .array(segment, { minLength: 1, maxLength: 4 })
  .map((segments) => `${PREFIX}/${segments.join('/')}`);
const query = fc.oneof(
  fc.constant(''),
  fc
    .array(fc.oneof(segmentPiece, fc.constantFrom('=', '&', '/', '?', '%', '..')), {
      maxLength: 6,
    })
    .map((p) => `?${p.join('')}`),
);
const method = fc.constantFrom('GET', 'GET', 'GET', 'POST', 'DELETE');

const LONG = 'a'.repeat(8000);
const TOO_LONG = 'a'.repeat(40 * 1024);
// [name, method, target, expected outcome]
const CORPUS: Array<[string, string, string, 'forwarded' | 'refused']> = [
  ['plain', 'GET', '/model/allocation', 'forwarded'],
  ['the prefix itself', 'GET', '/model', 'forwarded'],
  ['query', 'GET', '/model/allocation?window=1d&aggregate=namespace', 'forwarded'],
  [
    'Kubecost filter',
    'GET',
    '/model/allocation?filter=namespace:%22a%22+cluster!:%22b%22',
    'forwarded',
  ],
  [
    'dots and slashes in the query',
    'GET',
    '/model/allocation?a=%2e%2e/%2F&b=..%5c&c=/../etl',
    'forwarded',
  ],
  ['malformed escape in the query', 'GET', '/model/allocation?a=%zz', 'forwarded'],
  ['"?" in the query', 'GET', '/model/allocation?a=?b', 'forwarded'],
  ['encoded unreserved', 'GET', '/model/%61llocation', 'forwarded'],
  ['encoded "~"', 'GET', '/model/%7euser', 'forwarded'],
  ['encoded "e" making "etl"', 'GET', '/model/%65tl/log', 'refused'],
  ['upper-case ETL (another path to Go too)', 'GET', '/model/%45TL', 'forwarded'],
  ['"." inside a segment', 'GET', '/model/file%2ejson', 'forwarded'],
  ['%20', 'GET', '/model/a%20b', 'forwarded'],
  ['"+" stays "+" in a path', 'GET', '/model/a+b', 'forwarded'],
  ['%2B', 'GET', '/model/a%2Bb', 'forwarded'],
  ['sub-delims', 'GET', "/model/a!$&'()*,=:@b", 'forwarded'],
  ['UTF-8 "é"', 'GET', '/model/caf%C3%A9', 'forwarded'],
  ['UTF-8 emoji, lower-case hex', 'GET', '/model/%f0%9f%98%80', 'forwarded'],
  ['long path (8000 characters)', 'GET', `/model/allocation/${LONG}`, 'forwarded'],
  ['etl for a reader', 'GET', '/model/etl/log', 'refused'],
  ['raw ".."', 'GET', '/model/allocation/../etl/log', 'refused'],
  ['raw "."', 'GET', '/model/./etl', 'refused'],
  ['%2e%2e', 'GET', '/model/allocation/%2e%2e/etl/log', 'refused'],
  ['%2E%2E', 'GET', '/model/allocation/%2E%2E/etl', 'refused'],
  ['.%2e', 'GET', '/model/allocation/.%2e/etl', 'refused'],
  ['%2f', 'GET', '/model/allocation%2f..%2fetl', 'refused'],
  ['%2F', 'GET', '/model/etl%2Flog', 'refused'],
  ['%5c', 'GET', '/model/allocation%5c..%5cetl', 'refused'],
  ['raw backslash', 'GET', '/model/allocation\\..\\etl', 'refused'],
  ['..;/', 'GET', '/model/allocation/..;/etl/log', 'refused'],
  [';jsessionid', 'GET', '/model/allocation;jsessionid=1', 'refused'],
  ['%3b', 'GET', '/model/etl%3b/log', 'refused'],
  ['%00', 'GET', '/model/allocation%00', 'refused'],
  ['%00 before an extension', 'GET', '/model/x%00.json', 'refused'],
  ['overlong %c0%ae', 'GET', '/model/%c0%ae%c0%ae/etl/log', 'refused'],
  ['overlong %C0%AE upper', 'GET', '/model/allocation/%C0%AE%C0%AE/etl', 'refused'],
  ['overlong %C0%AF "/"', 'GET', '/model/allocation%C0%AF..%C0%AFetl', 'refused'],
  ['3-byte overlong', 'GET', '/model/%e0%80%ae%e0%80%ae/etl', 'refused'],
  ['surrogate', 'GET', '/model/%ED%A0%80', 'refused'],
  ['latin-1 byte', 'GET', '/model/caf%E9', 'refused'],
  ['fullwidth solidus', 'GET', '/model/allocation%EF%BC%8F..%EF%BC%8Fetl', 'refused'],
  ['fullwidth full stops', 'GET', '/model/%EF%BC%8E%EF%BC%8E/etl', 'refused'],
  ['one-dot leaders', 'GET', '/model/%E2%80%A4%E2%80%A4/etl', 'refused'],
  ['division slash', 'GET', '/model/a%E2%88%95etl', 'refused'],
  ['"//" leading', 'GET', '//model/allocation', 'refused'],
  ['"//" inside', 'GET', '/model//etl/log', 'refused'],
  ['trailing "/"', 'GET', '/model/allocation/', 'refused'],
  ['trailing "/" on etl', 'GET', '/model/etl/', 'refused'],
  ['#fragment', 'GET', '/model/allocation#frag', 'refused'],
  ['%23', 'GET', '/model/allocation%23/../../etl', 'refused'],
  ['%3F', 'GET', '/model/etl%3F/x', 'refused'],
  ['%25', 'GET', '/model/a%25b', 'refused'],
  ['double encoding', 'GET', '/model/%252e%252e/etl', 'refused'],
  ['malformed escape', 'GET', '/model/%zz', 'refused'],
  ['absolute-form', 'GET', 'http://x/model/allocation', 'refused'],
  ['absolute-form to etl', 'GET', 'http://127.0.0.1/model/etl/log', 'refused'],
  ['asterisk-form', 'OPTIONS', '*', 'refused'],
  ['tab in the path', 'GET', '/model/a\tb', 'refused'],
  ['space in the path', 'GET', '/model/a b', 'refused'],
  ['raw non-ASCII', 'GET', '/model/caf\u00e9', 'refused'],
  ['raw non-ASCII in the query', 'GET', '/model/allocation?q=caf\u00e9', 'refused'],
  ['raw tab in the query', 'GET', '/model/allocation?q=a\tb', 'refused'],
  ['raw "|{}^`" in the query', 'GET', '/model/allocation?q=|{}^`', 'forwarded'],
  ['raw quote and "<>" in the query', 'GET', '/model/allocation?q="<a>"', 'forwarded'],
  ['too long (40 KiB)', 'GET', `/model/${TOO_LONG}`, 'refused'],
  ['POST', 'POST', '/model/allocation', 'forwarded'],
  ['DELETE', 'DELETE', '/model/allocation', 'forwarded'],
  ['OPTIONS', 'OPTIONS', '/model/allocation', 'forwarded'],
  ['HEAD', 'HEAD', '/model/allocation', 'forwarded'],
  ['HEAD on etl', 'HEAD', '/model/etl/log', 'refused'],
];

describe('keygate in front of Go net/http', () => {
  for (const [name, method, target, outcome] of CORPUS) {
    it(`${name}: ${method} → ${outcome}`, async () => {
      const res = await probe(method, target);
      expect(judge(method, target, res), JSON.stringify(target).slice(0, 200)).toBe(outcome);
    });
  }

  it('generated targets: refused, or Go routes on exactly the authorised path', async () => {
    await fc.assert(
      fc.asyncProperty(method, path, query, async (m, p, q) => {
        judge(m, p + q, await probe(m, p + q));
      }),
      { numRuns: 300 },
    );
  });

  it('with an upstream base path: hand-written targets', async () => {
    for (const [, method, target, outcome] of CORPUS) {
      const res = await probe(method, target, BASE);
      expect(judge(method, target, res, BASE), JSON.stringify(target).slice(0, 200)).toBe(outcome);
    }
  });

  it('with an upstream base path: generated targets', async () => {
    await fc.assert(
      fc.asyncProperty(method, path, query, async (m, p, q) => {
        judge(m, p + q, await probe(m, p + q, BASE), BASE);
      }),
      { numRuns: 150 },
    );
  });

  it('nothing refused ever reached Go, and the comparison was not vacuous', async () => {
    const res = await probe('GET', '/model/allocation');
    expect(judge('GET', '/model/allocation', res)).toBe('forwarded');
    expect(goSeen(res).n).toBe(goCount);
    expect(tally.forwarded).toBeGreaterThan(50);
    expect(tally.refused).toBeGreaterThan(50);
  });
});
