import type { AddressInfo } from 'node:net';
import { expect, it, onTestFinished } from 'vitest';
import type { RequestHeaderBuilder } from '../../src/forward/request-headers.js';
import type { KeyService } from '../../src/keys/key-service.js';
import type { LastUsedRecorder } from '../../src/keys/last-used.js';
import type { Principal } from '../../src/keys/principal.js';
import type { KeyVerifier } from '../../src/keys/verifier.js';
import { createRequestHandler } from '../../src/pipeline/handle-request.js';
import { createProxyListener } from '../../src/pipeline/http-listener.js';
import { InflightLimit } from '../../src/policy/inflight-limit.js';
import { RateLimitGate } from '../../src/policy/rate-limit-gate.js';
import { InProcessRateLimiter } from '../../src/policy/rate-limiter.js';
import { RouteTable } from '../../src/policy/route-table.js';
import { systemClock } from '../../src/shared/clock.js';
import type { AccessEntry } from '../../src/telemetry/access-log.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { LogSink } from '../helpers/log-sink.js';

// The stages report their outcomes as values and are not meant to throw. If one ever does
// (a bug), the request must still fail closed with an answer: a 500, one access line, its
// in-flight slot and gauge released — not an unhandled rejection and a hung client.
it('a stage that throws after admission: 500 internal_error, one access line, nothing left in flight', async () => {
  const principal: Principal = {
    keyId: 'AbCdEfGhIjKl',
    account: 'team',
    role: 'reader',
    scopes: new Set(['read']),
    expiresAt: 0,
    rateLimit: undefined,
    filters: undefined,
  };
  const entries: AccessEntry[] = [];
  const metrics = new Metrics({});
  const logs = new LogSink();
  let forwarded = 0;
  const pipeline = createRequestHandler({
    // Real parts, except the two under control: a verifier that admits, a header builder with a bug.
    verifier: { verify: async () => principal } as unknown as KeyVerifier,
    headers: {
      clientAddress: (_raw: readonly string[], remote: string) => remote,
      build: () => {
        throw new TypeError('a bug in the header builder');
      },
    } as unknown as RequestHeaderBuilder,
    routes: new RouteTable([{ name: 'x', methods: ['GET'], path: '/x', scopes: ['read'] }]),
    upstream: {
      forward: async () => {
        forwarded++;
      },
      close: async () => {},
    },
    logger: createLogger('info', logs),
    accessLog: { write: (e) => entries.push(e) },
    metrics,
    keyPrefix: 'kg',
    lastUsed: { mark: () => {} } as unknown as LastUsedRecorder,
    keyUses: { count: () => {} },
    inflight: new InflightLimit(1),
    rateLimits: new RateLimitGate(
      new InProcessRateLimiter(systemClock),
      { defaults: new Map(), storeDown: 'refuse' },
      () => {},
    ),
    isDraining: () => false,
    upstreamBasePath: '',
    stripPrefix: undefined,
    mode: 'proxy',
    authzAnswer: { identity: testConfig('http://127.0.0.1:1').identityHeaders, cacheTtlMs: 0 },
    keys: {} as KeyService,
    bodyIdleTimeoutMs: 1000,
  });
  const server = createProxyListener(testConfig('http://127.0.0.1:1').listen, pipeline);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // Twice: the account's only in-flight slot (maxInflightPerAccount 1) must have been freed.
  for (let i = 0; i < 2; i++) {
    const res = await send(url, '/x', { headers: { 'x-api-key': 'anything' } });
    expect(res.status).toBe(500);
    expect(res.json.error).toBe('internal_error');
    expect(JSON.stringify(res.json)).not.toContain('header builder');
  }
  await expect.poll(() => entries.length).toBe(2);
  expect(entries.map((e) => [e.status, e.route, e.decision, e.error])).toEqual([
    [500, 'x', 'error', 'internal_error'],
    [500, 'x', 'error', 'internal_error'],
  ]);
  expect(forwarded).toBe(0);
  expect(pipeline.inFlight).toBe(0);
  expect(await metrics.render()).toMatch(/^keygate_inflight_requests 0$/m);
  // The bug itself is logged for the operator, with its stack.
  expect(logs.lines.some((l) => l.msg === 'request failed')).toBe(true);
});
