import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { type HttpResult, rawHttp, send } from '../helpers/http.js';
import { RawSession } from '../helpers/raw-socket.js';
import { RedisServer } from '../helpers/redis-server.js';
import { sample } from '../helpers/scrape.js';
import { until } from '../helpers/until.js';
import { RecordingUpstream } from '../helpers/upstream.js';

/**
 * Item 6 (bodies) and item 8's Host rule of issue 9: what keygate does with request framing,
 * request bodies, Expect: 100-continue, and tenants that try to hold the upstream pool.
 * Requests are written byte for byte on raw sockets so the framing is exactly the attacker's.
 */

let redis: RedisServer;
let upstream: RecordingUpstream;

/** What the upstream saw of /upload bodies: open now, most open at once, cut off, completed. */
const uploads = { open: 0, maxOpen: 0, aborted: 0, completed: 0 };
/** Responses the upstream holds on /slow until the test lets them go. */
const held: Array<() => void> = [];
const releaseHeld = () => {
  for (const release of held.splice(0)) release();
};

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  upstream.on('/slow', async (_req, res) => {
    await new Promise<void>((resolve) => held.push(resolve));
    res.end('released');
  });
  upstream.onStream('/upload', (req: IncomingMessage, res) => {
    uploads.open++;
    uploads.maxOpen = Math.max(uploads.maxOpen, uploads.open);
    let bytes = 0;
    const read = () => req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    // ?slow: the upstream leaves the body unread for a while (backpressure, not a slow client).
    if (req.url?.includes('slow')) setTimeout(read, 1500);
    else read();
    req.on('error', () => undefined);
    req.on('end', () => {
      uploads.completed++;
      const json = JSON.stringify({ bytes });
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(json),
      });
      res.end(json);
    });
    req.on('close', () => {
      uploads.open--;
      if (!req.complete) uploads.aborted++;
    });
  });
});

afterAll(async () => {
  releaseHeld();
  await upstream?.close();
  await redis?.destroy();
});

beforeEach(() => {
  releaseHeld();
  upstream.reset();
  Object.assign(uploads, { open: 0, maxOpen: 0, aborted: 0, completed: 0 });
});

async function gateway(overrides: Record<string, unknown>): Promise<Gateway> {
  return startGateway({
    config: testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: redis.url } },
      ...overrides,
    }),
  });
}

async function metric(gw: Gateway, name: string): Promise<number> {
  return sample(gw, name);
}

/** keygate's requests in flight, from its own gauge: 0 once every ending was processed. */
async function inflight(gw: Gateway): Promise<number> {
  return sample(gw, 'keygate_inflight_requests');
}

/**
 * Starts a GET the upstream holds until releaseHeld(); resolves once the upstream has it, with
 * the pending response (boxed: an async function would flatten a returned promise).
 */
async function holdSlow(gw: Gateway, key: string): Promise<{ response: Promise<HttpResult> }> {
  const before = held.length;
  const response = send(gw.url, '/model/slow', { headers: { 'x-api-key': key } });
  await until(() => held.length > before, 'the upstream to hold a request');
  return { response };
}

describe('framing: checked before credentials, never forwarded', () => {
  let gw: Gateway;
  let reader: string;
  let member: string;
  beforeAll(async () => {
    gw = await gateway({});
    reader = (await gw.issue('framing-reader', 'reader')).key;
    member = (await gw.issue('framing-member', 'member')).key;
  });
  afterAll(() => gw?.close());

  const hostPairs: Array<[string, string]> = [
    ['Host: a.example', 'Host: b.example'],
    ['Host: a.example', 'host: a.example'], // the same value twice is still two field lines
    ['HOST: a.example', 'hOsT: evil.example'],
    ['host: a.example', 'Host:'],
  ];
  for (const [first, second] of hostPairs) {
    it(`two Host headers (${first} / ${second}) → 400 bad_request (RFC 9112 §3.2)`, async () => {
      const res = await rawHttp(
        gw.port,
        `GET /model/allocation HTTP/1.1\r\n${first}\r\n${second}\r\nX-API-Key: ${reader}\r\nConnection: close`,
      );
      expect(res.status).toBe(400);
      expect(res.json.error).toBe('bad_request');
      expect(upstream.requests).toHaveLength(0);
    });
  }

  it('two Host headers are refused before credentials are looked at', async () => {
    const res = await rawHttp(
      gw.port,
      'GET /model/allocation HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close',
    );
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('bad_request'); // not missing_credentials
  });

  it('an empty Host → 400 bad_request; no Host on HTTP/1.1 → 400 (node:http requireHostHeader)', async () => {
    for (const host of ['Host:', 'Host:   ']) {
      const res = await rawHttp(
        gw.port,
        `GET /model/allocation HTTP/1.1\r\n${host}\r\nX-API-Key: ${reader}\r\nConnection: close`,
      );
      expect(res.status).toBe(400);
      expect(res.json.error).toBe('bad_request');
    }
    const missing = await rawHttp(
      gw.port,
      `GET /model/allocation HTTP/1.1\r\nX-API-Key: ${reader}\r\nConnection: close`,
    );
    expect(missing.status).toBe(400);
    expect(upstream.requests).toHaveLength(0);
  });

  it('one Host, and HTTP/1.0 without Host, are forwarded', async () => {
    const one = await rawHttp(
      gw.port,
      `GET /model/allocation HTTP/1.1\r\nHost: a\r\nX-API-Key: ${reader}\r\nConnection: close`,
    );
    expect(one.status).toBe(200);
    const old = await rawHttp(gw.port, `GET /model/allocation HTTP/1.0\r\nX-API-Key: ${reader}`);
    expect(old.status).toBe(200);
    expect(upstream.requests).toHaveLength(2);
  });

  const bodies: Array<[string, string]> = [
    ['Content-Length: 3', 'abc'],
    ['Transfer-Encoding: chunked', '3\r\nabc\r\n0\r\n\r\n'],
    ['Transfer-Encoding: chunked', '0\r\n\r\n'], // chunked and empty is still a body framing
  ];
  for (const method of ['GET', 'HEAD', 'OPTIONS']) {
    for (const [framing, body] of bodies) {
      it(`${method} with ${framing} → 400 body_not_allowed, never forwarded`, async () => {
        const res = await rawHttp(
          gw.port,
          `${method} /model/allocation HTTP/1.1\r\nHost: a\r\nX-API-Key: ${reader}\r\n${framing}\r\nConnection: close\r\n\r\n${body}`,
        );
        expect(res.status).toBe(400);
        if (method !== 'HEAD') expect(res.json.error).toBe('body_not_allowed');
        expect(upstream.requests).toHaveLength(0);
      });
    }
  }

  // A Node server keeps only its first ~1000 header lines and drops the rest silently: past
  // that line a second Host (or a Content-Length) hid from keygate's checks, and keygate's own
  // identity headers, appended last, never reached a Node upstream.
  const junk = (n: number) => Array.from({ length: n }, (_, i) => `x-junk-${i}: v`).join('\r\n');

  it('a second Host after 1100 header lines → 431, never forwarded', async () => {
    const res = await rawHttp(
      gw.port,
      `GET /model/allocation HTTP/1.1\r\nHost: a\r\nX-API-Key: ${reader}\r\n${junk(1100)}\r\nHost: evil\r\nConnection: close`,
    );
    expect(res.status).toBe(431);
    expect(res.json.error).toBe('too_many_headers');
    expect(upstream.requests).toHaveLength(0);
  });

  it('a second Host after 200 header lines (within the limit) → 400 bad_request, never forwarded', async () => {
    const res = await rawHttp(
      gw.port,
      `GET /model/allocation HTTP/1.1\r\nHost: a\r\nX-API-Key: ${reader}\r\n${junk(200)}\r\nHost: evil\r\nConnection: close`,
    );
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('bad_request');
    expect(upstream.requests).toHaveLength(0);
  });

  it('more header lines than a Node upstream keeps → 431: the client cannot push keygate’s identity headers off the end', async () => {
    const res = await rawHttp(
      gw.port,
      `GET /model/allocation HTTP/1.1\r\nHost: a\r\nX-API-Key: ${reader}\r\n${junk(1020)}\r\nConnection: close`,
    );
    // Whatever keygate answers, an upstream request without keygate's identity must not exist.
    for (const r of upstream.requests)
      expect(r.headers['x-keygate-account']).toBe('framing-reader');
    expect(res.status).toBe(431);
    expect(res.json.error).toBe('too_many_headers');
    expect(upstream.requests).toHaveLength(0);
  });

  it('a request with a few dozen headers is forwarded with keygate’s identity', async () => {
    const res = await rawHttp(
      gw.port,
      `GET /model/allocation HTTP/1.1\r\nHost: a\r\nX-API-Key: ${reader}\r\n${junk(60)}\r\nConnection: close`,
    );
    expect(res.status).toBe(200);
    expect(upstream.requests[0]?.headers['x-keygate-account']).toBe('framing-reader');
  });

  it('GET with Content-Length: 0 is forwarded', async () => {
    const res = await rawHttp(
      gw.port,
      `GET /model/allocation HTTP/1.1\r\nHost: a\r\nX-API-Key: ${reader}\r\nContent-Length: 0\r\nConnection: close`,
    );
    expect(res.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
  });

  const unsupported = [
    ['Transfer-Encoding: gzip, chunked'],
    ['Transfer-Encoding: deflate,chunked'],
    ['Transfer-Encoding: x-custom, chunked'],
    ['Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'], // two lines node:http would join
    // node:http's parser refuses these too, but only after the request event: keygate answers first.
    ['Transfer-Encoding: identity'],
    ['Transfer-Encoding: gzip'],
    ['Transfer-Encoding: chunked;x=1'], // no transfer parameters
  ];
  for (const lines of unsupported) {
    it(`${lines.join(' / ')} → 501 not_implemented, never forwarded`, async () => {
      const res = await rawHttp(
        gw.port,
        `POST /model/upload HTTP/1.1\r\nHost: a\r\nX-API-Key: ${member}\r\n${lines.join('\r\n')}\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
      );
      expect(res.status).toBe(501);
      // For the codings node:http also refuses, its own bare 400 follows keygate's answer on
      // the closing socket, so the body is matched rather than parsed.
      expect(res.text).toContain('"error":"not_implemented"');
      expect(upstream.requests).toHaveLength(0);
    });
  }

  // Some of these node:http refuses itself (a bare 400 from its parser), some keygate does;
  // either way a 400 and nothing upstream.
  const malformed: Array<[label: string, head: string, body: string]> = [
    [
      'chunked, chunked',
      'HTTP/1.1\r\nTransfer-Encoding: chunked, chunked',
      '3\r\nabc\r\n0\r\n\r\n',
    ],
    [
      'two chunked lines',
      'HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked',
      '3\r\nabc\r\n0\r\n\r\n',
    ],
    [
      'chunked plus an empty line',
      'HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:',
      '3\r\nabc\r\n0\r\n\r\n',
    ],
    ['an empty element', 'HTTP/1.1\r\nTransfer-Encoding: ,chunked', '3\r\nabc\r\n0\r\n\r\n'],
    ['empty with Content-Length', 'HTTP/1.1\r\nTransfer-Encoding:\r\nContent-Length: 3', 'abc'],
    [
      'Content-Length with chunked',
      'HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked',
      '3\r\nabc\r\n0\r\n\r\n',
    ],
    ['two Content-Lengths', 'HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3', 'abc'],
    ['chunked on HTTP/1.0', 'HTTP/1.0\r\nTransfer-Encoding: chunked', '3\r\nabc\r\n0\r\n\r\n'],
  ];
  for (const [label, head, body] of malformed) {
    it(`Transfer-Encoding/Content-Length: ${label} → 400, never forwarded`, async () => {
      const res = await rawHttp(
        gw.port,
        `POST /model/upload ${head}\r\nHost: a\r\nX-API-Key: ${member}\r\nConnection: close\r\n\r\n${body}`,
      );
      expect(res.status).toBe(400);
      expect(upstream.requests).toHaveLength(0);
    });
  }

  for (const coding of ['chunked', 'CHUNKED', 'Chunked']) {
    it(`Transfer-Encoding: ${coding} is plain chunked and forwarded with its body`, async () => {
      const res = await rawHttp(
        gw.port,
        `POST /model/upload HTTP/1.1\r\nHost: a\r\nX-API-Key: ${member}\r\nTransfer-Encoding: ${coding}\r\nConnection: close\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n`,
      );
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ bytes: 7 });
    });
  }
});

describe('Expect: 100-continue is answered only after authentication and route policy', () => {
  let gw: Gateway;
  let reader: string;
  let member: string;
  beforeAll(async () => {
    gw = await gateway({});
    reader = (await gw.issue('expect-reader', 'reader')).key;
    member = (await gw.issue('expect-member', 'member')).key;
  });
  afterAll(() => gw?.close());

  const head = (key: string, path = '/model/upload') =>
    `POST ${path} HTTP/1.1\r\nHost: a\r\nX-API-Key: ${key}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`;

  const refusals: Array<[string, () => string, number, string]> = [
    [
      'a wrong key',
      () => `kg_${'A'.repeat(12)}_${'B'.repeat(43)}${'C'.repeat(6)}`,
      401,
      'invalid_key',
    ],
    ['a key without the write scope', () => reader, 403, 'insufficient_scope'],
  ];
  for (const [label, key, status, code] of refusals) {
    it(`${label}: ${status} ${code}, no 100 Continue, connection closed`, async () => {
      const session = await RawSession.open(gw.port);
      onTestFinished(() => session.destroy());
      session.write(head(key()));
      const res = await session.response();
      expect(session.received.startsWith(`HTTP/1.1 ${status} `)).toBe(true);
      expect(session.received).not.toMatch(/100 Continue/i);
      expect(res.interim).toEqual([]);
      expect(res.json.error).toBe(code);
      expect(res.headers.get('connection')).toBe('close');
      expect(upstream.requests).toHaveLength(0);
    });
  }

  it('a missing key: 401, no 100 Continue', async () => {
    const session = await RawSession.open(gw.port);
    onTestFinished(() => session.destroy());
    session.write(
      'POST /model/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n',
    );
    const res = await session.response();
    expect(res.status).toBe(401);
    expect(res.interim).toEqual([]);
  });

  it('an admitted request: 100 Continue, then the body, then the upstream answer; no Expect upstream', async () => {
    const session = await RawSession.open(gw.port);
    onTestFinished(() => session.destroy());
    session.write(head(member));
    await session.until((s) => /^HTTP\/1\.1 100 Continue\r\n\r\n/.test(s.received), 5000, '100');
    session.write('hello');
    const res = await session.response();
    expect(res.interim).toEqual([100]);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ bytes: 5 });
    const seen = upstream.requests[0]?.rawHeaders.filter((_, i) => i % 2 === 0) ?? [];
    expect(seen.map((n) => n.toLowerCase())).not.toContain('expect');
  });
});

describe('Expect: 100-continue on the admin API', () => {
  let gw: Gateway;
  let admin: string;
  let member: string;
  beforeAll(async () => {
    gw = await gateway({});
    admin = (await gw.issue('expect-admin', 'admin')).key;
    member = (await gw.issue('expect-member2', 'member')).key;
  });
  afterAll(() => gw?.close());

  const body = JSON.stringify({ name: 'made-after-100', role: 'reader' });
  const head = (key: string) =>
    `POST /_keygate/v1/service-accounts HTTP/1.1\r\nHost: a\r\nX-API-Key: ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`;

  it('without the admin scope: 403, no 100 Continue', async () => {
    const session = await RawSession.open(gw.port);
    onTestFinished(() => session.destroy());
    session.write(head(member));
    const res = await session.response();
    expect(res.status).toBe(403);
    expect(res.interim).toEqual([]);
  });

  it('with the admin scope: 100 Continue, then the body is read and acted on', async () => {
    const session = await RawSession.open(gw.port);
    onTestFinished(() => session.destroy());
    session.write(head(admin));
    await session.until((s) => s.received.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 5000, '100');
    session.write(body);
    const res = await session.response();
    expect(res.interim).toEqual([100]);
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ name: 'made-after-100', role: 'reader' });
  });
});

describe('body idle timeout', () => {
  let gw: Gateway;
  let member: string;
  beforeAll(async () => {
    // Five times the 100 ms between the steady test's chunks: a loaded CI machine stays inside it.
    gw = await gateway({ listen: { bodyIdleTimeout: '500ms' } });
    member = (await gw.issue('idle-member', 'member')).key;
  });
  afterAll(() => gw?.close());

  const uploads_: Array<[string, string, string]> = [
    ['a chunked body', 'Transfer-Encoding: chunked', '3\r\nabc\r\n'],
    ['a Content-Length body', 'Content-Length: 100', 'abc'],
  ];
  for (const [label, framing, first] of uploads_) {
    it(`${label} that stops → 408 body_timeout, connection closed, upstream request aborted`, async () => {
      const session = await RawSession.open(gw.port);
      onTestFinished(() => session.destroy());
      session.write(
        `POST /model/upload HTTP/1.1\r\nHost: a\r\nX-API-Key: ${member}\r\n${framing}\r\n\r\n${first}`,
      );
      const res = await session.response(5000);
      expect(res.status).toBe(408);
      expect(res.json.error).toBe('body_timeout');
      expect(res.headers.get('connection')).toBe('close');
      await session.until((s) => s.closed, 5000, 'keygate to close the connection');
      await until(() => uploads.aborted === 1, 'the upstream to see its request cut off');
      expect(uploads.completed).toBe(0);
      expect(
        await metric(gw, 'keygate_upstream_errors_total{kind="body_timeout"}'),
      ).toBeGreaterThan(0);
    });
  }

  it('a slow but steady body is not cut off: the limit is on silence, not on duration', async () => {
    const session = await RawSession.open(gw.port);
    onTestFinished(() => session.destroy());
    session.write(
      `POST /model/upload HTTP/1.1\r\nHost: a\r\nX-API-Key: ${member}\r\nTransfer-Encoding: chunked\r\n\r\n`,
    );
    // 10 chunks 100 ms apart: twice the idle timeout in all.
    for (let i = 0; i < 10; i++) {
      session.write('2\r\nab\r\n');
      await new Promise((r) => setTimeout(r, 100));
    }
    session.write('0\r\n\r\n');
    const res = await session.response();
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ bytes: 20 });
  });

  it('a body held back by a slow upstream (backpressure) is not cut off', async () => {
    // 8 MiB arrives at once from the client; the upstream leaves it unread for 1.5 s.
    const size = 8 * 1024 * 1024;
    const res = await send(gw.url, '/model/upload?slow=1', {
      method: 'POST',
      headers: { 'x-api-key': member },
      body: 'x'.repeat(size),
    });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ bytes: size });
  });
});

describe('per-account in-flight bound', () => {
  let gw: Gateway;
  let a: string;
  let b: string;
  beforeAll(async () => {
    gw = await gateway({ listen: { maxInflightPerAccount: 2, bodyIdleTimeout: '300ms' } });
    a = (await gw.issue('tenant-a', 'member')).key;
    b = (await gw.issue('tenant-b', 'member')).key;
  });
  afterAll(() => gw?.close());

  /** Account A may hold exactly two requests: the third is refused, B is not affected. */
  async function expectExactlyTwoFor(key: string) {
    const first = await holdSlow(gw, key);
    const second = await holdSlow(gw, key);
    const third = await send(gw.url, '/model/slow', { headers: { 'x-api-key': key } });
    expect(third.status).toBe(429);
    expect(third.json.error).toBe('too_many_inflight');
    expect(third.headers['retry-after']).toBe('1');
    const other = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': b } });
    expect(other.status).toBe(200);
    releaseHeld();
    expect((await first.response).status).toBe(200);
    expect((await second.response).status).toBe(200);
  }

  it('the account over its bound gets 429 too_many_inflight; other accounts are served', async () => {
    await expectExactlyTwoFor(a);
    // Freed: the account is served again.
    const again = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': a } });
    expect(again.status).toBe(200);
  });

  it('every ending releases its slot exactly once (aborts, body timeouts, refusals, upstream errors)', async () => {
    for (let i = 0; i < 6; i++) {
      // Client gone while the upstream holds the request.
      const session = await RawSession.open(gw.port);
      const before = held.length;
      session.write(`GET /model/slow HTTP/1.1\r\nHost: a\r\nX-API-Key: ${a}\r\n\r\n`);
      await until(() => held.length > before, 'the upstream to hold the request');
      session.destroy();
      // Client gone in the middle of its body.
      const uploading = await RawSession.open(gw.port);
      uploading.write(
        `POST /model/upload HTTP/1.1\r\nHost: a\r\nX-API-Key: ${a}\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n`,
      );
      await until(() => uploads.open > 0, 'the upload to reach the upstream');
      uploading.destroy();
      await until(async () => (await inflight(gw)) === 0, 'keygate to see both clients leave');
      await until(() => uploads.open === 0, 'the upstream upload to be cut off');
    }
    // Body timeouts, two at a time.
    for (let i = 0; i < 3; i++) {
      const sessions = await Promise.all([RawSession.open(gw.port), RawSession.open(gw.port)]);
      for (const s of sessions) {
        s.write(
          `POST /model/upload HTTP/1.1\r\nHost: a\r\nX-API-Key: ${a}\r\nContent-Length: 10\r\n\r\nab`,
        );
      }
      for (const s of sessions) expect((await s.response()).status).toBe(408);
    }
    // Refused by policy after the key verified, and refused by framing.
    expect((await send(gw.url, '/model/etl/x', { headers: { 'x-api-key': a } })).json.error).toBe(
      'insufficient_scope',
    );
    expect(
      (
        await rawHttp(
          gw.port,
          `GET /model/slow HTTP/1.1\r\nHost: a\r\nX-API-Key: ${a}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`,
        )
      ).json.error,
    ).toBe('body_not_allowed');
    // The upstream answers 200 as before; the bound is exactly 2 again: no leak, no double release.
    await until(async () => (await inflight(gw)) === 0, 'every request to have ended');
    await expectExactlyTwoFor(a);
  });
});

describe('bounded upstream queue', () => {
  let gw: Gateway;
  let key: string;
  beforeAll(async () => {
    gw = await gateway({ upstream: { connections: 1, queue: 1 } });
    key = (await gw.issue('queue-tenant', 'reader')).key;
  });
  afterAll(() => gw?.close());

  it('beyond connections + queue → 503 upstream_saturated at once, with Retry-After', async () => {
    const active = await holdSlow(gw, key); // uses the one connection
    const queued = send(gw.url, '/model/slow', { headers: { 'x-api-key': key } }); // waits for it
    await until(async () => (await inflight(gw)) === 2, 'the second request to be queued');
    const third = send(gw.url, '/model/allocation', { headers: { 'x-api-key': key } });
    // Without the bound the third would wait in undici's queue behind the held requests.
    const early = await Promise.race([
      third,
      new Promise((r) => setTimeout(() => r('waiting'), 2000)),
    ]);
    releaseHeld();
    const res = await third;
    expect(early).not.toBe('waiting');
    expect(res.status).toBe(503);
    expect(res.json.error).toBe('upstream_saturated');
    expect(res.headers['retry-after']).toBe('1');
    expect((await active.response).status).toBe(200);
    await until(() => held.length > 0, 'the queued request to reach the upstream');
    releaseHeld();
    expect((await queued).status).toBe(200);
    expect(await metric(gw, 'keygate_upstream_errors_total{kind="saturated"}')).toBe(1);
    // Capacity is back once they finished.
    expect(
      (await send(gw.url, '/model/allocation', { headers: { 'x-api-key': key } })).status,
    ).toBe(200);
  });
});

describe('scaled-down "slow uploads stall every tenant"', () => {
  let gw: Gateway;
  let slowTenant: string;
  let other: string;
  beforeAll(async () => {
    gw = await gateway({
      upstream: { connections: 4 },
      listen: { maxInflightPerAccount: 2, bodyIdleTimeout: '1s' }, // ten trickle periods
    });
    slowTenant = (await gw.issue('trickler', 'member')).key;
    other = (await gw.issue('bystander', 'reader')).key;
  });
  afterAll(() => gw?.close());

  it('one account trickling uploads holds at most 2 upstream connections, others are served, trickles are cut', async () => {
    const sessions: RawSession[] = [];
    let trickling = true;
    const trickle = setInterval(() => {
      if (!trickling) return;
      for (const s of sessions) s.write('1\r\nx\r\n');
    }, 100);
    onTestFinished(() => {
      clearInterval(trickle);
      for (const s of sessions) s.destroy();
    });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s = await RawSession.open(gw.port);
      sessions.push(s);
      const openBefore = uploads.open;
      s.write(
        `POST /model/upload HTTP/1.1\r\nHost: a\r\nX-API-Key: ${slowTenant}\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n`,
      );
      await until(
        () => uploads.open > openBefore || s.received.includes('\r\n\r\n'),
        'the upload to reach the upstream or be refused',
      );
      if (s.received !== '') statuses.push((await s.response()).status);
    }
    expect(statuses).toEqual([429, 429, 429]);
    expect(uploads.open).toBe(2);
    // The other tenant is served while the two trickles are alive.
    for (let i = 0; i < 5; i++) {
      const res = await send(gw.url, '/model/allocation', { headers: { 'x-api-key': other } });
      expect(res.status).toBe(200);
    }
    expect(uploads.open).toBe(2);
    // The trickles stop: both are cut at the idle timeout and their upstream requests aborted.
    trickling = false;
    const cut = sessions.filter((s) => !s.received.includes('429'));
    for (const s of cut) expect((await s.response()).status).toBe(408);
    await until(() => uploads.open === 0, 'the upstream connections to be freed');
    expect(uploads.maxOpen).toBe(2);
    expect(uploads.aborted).toBe(2);
    const after = await send(gw.url, '/model/upload', {
      method: 'POST',
      headers: { 'x-api-key': slowTenant },
      body: 'done',
    });
    expect(after.status).toBe(200);
  });
});
