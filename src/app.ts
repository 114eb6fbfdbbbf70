import { randomUUID } from 'node:crypto';
import { createServer, type Server, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { DestinationStream } from 'pino';
import type { Config } from './config/schema.js';
import { KeygateError, toErrorBody } from './errors.js';
import { BoundedUpstreamClient } from './forward/bounded-upstream.js';
import { RequestHeaderBuilder, trustedProxyList } from './forward/request-headers.js';
import { UndiciUpstreamClient, type UpstreamClient } from './forward/upstream-client.js';
import { openUpstreamCredential } from './forward/upstream-credential.js';
import { WorkerArgon2Hasher } from './keys/argon2-workers.js';
import type { Hasher } from './keys/hasher.js';
import { type AuditEntry, KeyService } from './keys/key-service.js';
import { LastUsedRecorder } from './keys/last-used.js';
import { KeyVerifier } from './keys/verifier.js';
import { VerifyPool } from './keys/verify-pool.js';
import { createRequestHandler } from './pipeline/handle-request.js';
import { InflightLimit } from './policy/inflight-limit.js';
import { RouteTable } from './policy/route-table.js';
import { type Clock, systemClock } from './shared/clock.js';
import { instrumentKeyStore } from './store/instrumented-key-store.js';
import type { Invalidation } from './store/invalidation-bus.js';
import type { KeyStore } from './store/key-store.js';
import { createInvalidationBus } from './store/open-store.js';
import { jsonAccessLog } from './telemetry/access-log.js';
import { createLogger, type Logger } from './telemetry/logger.js';
import { Metrics } from './telemetry/metrics.js';
import { MetricsAuth } from './telemetry/metrics-auth.js';
import { createOpsServer, listenOn, Readiness } from './telemetry/ops-server.js';

export interface AppDeps {
  config: Readonly<Config>;
  store: KeyStore;
  clock?: Clock;
  hasher?: Hasher;
  upstream?: UpstreamClient;
  /** Where log lines go (tests capture them); stdout by default. Ignored when `logger` is given. */
  logDestination?: DestinationStream;
  /** How often key last-use marks are written (tests shorten it). */
  lastUsedFlushMs?: number;
  /** A logger already in use (serve logs start-up before the app exists: one stream, in order). */
  logger?: Logger;
}

export interface App {
  readonly server: Server;
  readonly opsServer: Server;
  readonly lastUsed: LastUsedRecorder;
  readonly metrics: Metrics;
  readonly readiness: Readiness;
  readonly verifier: KeyVerifier;
  readonly pool: VerifyPool;
  readonly keys: KeyService;
  readonly logger: Logger;
  readonly store: KeyStore;
  listen(port?: number, host?: string): Promise<AddressInfo>;
  /** The ops listener: /metrics, /healthz, /readyz. */
  listenOps(port?: number, host?: string): Promise<AddressInfo>;
  /**
   * Graceful stop: not ready, stop accepting, let in-flight requests finish (up to the drain
   * timeout), then close the upstream pool and the store. Resolves with the number drained.
   */
  shutdown(drainTimeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

/** How often the store is pinged for keygate_store_up and readiness. */
const STORE_PROBE_MS = 1000;
/** last_used_at is written at most this often per key per replica. */
const LAST_USED_INTERVAL_SECONDS = 60;

/** Writes a JSON error straight onto a socket that has left the request/response cycle. */
function refuseOnSocket(socket: Duplex, err: KeygateError): void {
  const body = JSON.stringify(toErrorBody(err, randomUUID()));
  socket.end(
    // own-key: err.status comes from the closed table in errors.ts
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

export interface KeyServicesOptions {
  logger: Logger;
  hasher?: Hasher | undefined;
  /** Runs first on every invalidation, in this process (the server's verifier). */
  onInvalidate?: (event: Invalidation) => void;
}

/**
 * Key management without a listener: what the CLI needs, and what the app builds on. Every
 * weakening write is applied locally at once and published to the other replicas.
 */
export function createKeyServices(
  config: Readonly<Config>,
  store: KeyStore,
  clock: Clock,
  options: KeyServicesOptions,
) {
  const { logger } = options;
  const pool = new VerifyPool(config.keys.verifyConcurrency, config.keys.verifyQueue);
  const hasher =
    options.hasher ?? new WorkerArgon2Hasher(config.keys.argon2, config.keys.verifyConcurrency);
  const bus = createInvalidationBus(store);
  const keys = new KeyService({
    store,
    hasher,
    pool,
    clock,
    prefix: config.keys.prefix,
    roles: config.roles,
    invalidate: async (event) => {
      options.onInvalidate?.(event);
      try {
        const { receivers, confirmed } = await bus.publish(event);
        if (confirmed < receivers) {
          logger.warn(
            { event, receivers, confirmed },
            `${receivers - confirmed} of ${receivers} replicas did not confirm a cache invalidation in time; they may accept the old state for up to keys.cacheTtl`,
          );
        }
      } catch (err) {
        // The write itself succeeded; other replicas fall back to the cache TTL.
        logger.error(
          { err: String(err), event },
          `could not publish a cache invalidation; other replicas may accept the old state for up to keys.cacheTtl`,
        );
      }
    },
    audit: (entry) => logger.info({ type: 'audit', ...auditFields(entry) }, 'audit'),
  });
  return {
    pool,
    hasher,
    keys,
    bus,
    async close() {
      await bus.close();
      await hasher.close?.();
    },
  };
}

function auditFields(entry: AuditEntry) {
  const actor =
    entry.actor.kind === 'key'
      ? {
          actor: entry.actor.account,
          actor_key_id: entry.actor.keyId,
          request_id: entry.actor.requestId,
        }
      : { actor: `cli:${entry.actor.user}` };
  return {
    ...actor,
    action: entry.action,
    target: entry.target,
    result: entry.result,
    error: entry.error,
    key_id: entry.details?.keyId,
    replaced_key_id: entry.details?.replacedKeyId,
  };
}

/** The composition root: every long-lived object is built here, once, and passed in. */
export function createApp(deps: AppDeps): App {
  const { config } = deps;
  // First, before any worker or timer exists: a missing token file is a config error (exit 2).
  const metricsAuth =
    config.ops.metricsTokenFile === undefined
      ? undefined
      : MetricsAuth.fromFile(config.ops.metricsTokenFile);
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger(config.log.level, deps.logDestination);
  let verifyQueueDepth = () => 0;
  const metrics = new Metrics({
    verifyQueueDepth: () => verifyQueueDepth(),
    accountLabel: config.metrics.accountLabel,
  });
  // Before any worker or timer: a missing or bad credential file is a config error (exit 2).
  const upstreamCredential = openUpstreamCredential(
    config.upstream.credential,
    logger,
    metrics.registry,
  );
  // Everything reads the store through this wrapper, which counts unreachable-store failures.
  const store = instrumentKeyStore(deps.store, (op) => metrics.storeErrors.inc({ op }));
  const services = createKeyServices(config, store, clock, {
    logger,
    hasher: deps.hasher,
    // Bound late: the verifier is built from the services' pool and hasher just below.
    onInvalidate: (event) => verifier.apply(event),
  });
  const { pool, hasher, keys } = services;
  verifyQueueDepth = () => pool.queueDepth;
  const verifier = new KeyVerifier({
    store,
    hasher,
    pool,
    clock,
    prefix: config.keys.prefix,
    roles: config.roles,
    cacheTtlMs: config.keys.cacheTtl,
    negativeTtlMs: config.keys.negativeCacheTtl,
    maxEntries: config.keys.cacheMaxEntries,
    failureBudget: {
      perKeyId: config.keys.failureBudget.perKeyId,
      perAddress: config.keys.failureBudget.perAddress,
      windowMs: config.keys.failureBudget.window,
    },
    observer: {
      cacheEvent: (event) => metrics.keyCacheEvents.inc({ event }),
      verifyDuration: (seconds) => metrics.keyVerifyDuration.observe(seconds),
    },
  });
  void services.bus.subscribe(
    (event) => {
      metrics.keyCacheEvents.inc({ event: 'invalidation' });
      verifier.apply(event);
    },
    () => {
      metrics.keyCacheEvents.inc({ event: 'clear' });
      verifier.clear();
      logger.warn(
        'invalidation channel reconnected: verified-key cache cleared, keys are checked afresh',
      );
    },
  );
  const lastUsed = new LastUsedRecorder({
    store,
    clock,
    intervalSeconds: LAST_USED_INTERVAL_SECONDS,
    flushMs: deps.lastUsedFlushMs ?? 5000,
    onError: (err) =>
      logger.warn({ err: String(err) }, 'could not record key last-use times; will retry'),
  });
  lastUsed.start();
  const readiness = new Readiness(store, metrics);
  // store_up follows the store even when nobody polls /readyz.
  const storeProbe = setInterval(() => void readiness.check(), STORE_PROBE_MS);
  storeProbe.unref();
  void readiness.check();

  // The undici pool's own queue is unbounded: the wrapper answers 503 beyond connections + queue.
  const upstream = new BoundedUpstreamClient(
    deps.upstream ??
      new UndiciUpstreamClient({
        url: config.upstream.url,
        connections: config.upstream.connections,
        connectTimeoutMs: config.upstream.connectTimeout,
        timeoutMs: config.upstream.timeout,
      }),
    config.upstream.connections + config.upstream.queue,
  );
  const upstreamUrl = new URL(config.upstream.url);
  const handler = createRequestHandler({
    verifier,
    routes: new RouteTable(config.routes),
    headers: new RequestHeaderBuilder(
      config.identityHeaders,
      trustedProxyList(config.trustedProxies),
      config.trustedProxies.length > 0,
      config.upstream.dropHeaders,
      upstreamCredential,
    ),
    upstream,
    logger,
    accessLog: jsonAccessLog(logger),
    metrics,
    upstreamBasePath: upstreamUrl.pathname === '/' ? '' : upstreamUrl.pathname.replace(/\/$/, ''),
    stripPrefix: config.upstream.stripPrefix,
    keyPrefix: config.keys.prefix,
    keys,
    lastUsed,
    isDraining: () => readiness.draining,
    inflight: new InflightLimit(config.listen.maxInflightPerAccount),
    bodyIdleTimeoutMs: config.listen.bodyIdleTimeout,
  });

  const { listen } = config;
  const server = createServer(
    {
      maxHeaderSize: listen.maxHeaderBytes,
      requestTimeout: listen.requestTimeout,
      headersTimeout: listen.headersTimeout,
      keepAliveTimeout: listen.keepAliveTimeout,
    },
    (req, res) => void handler(req, res),
  );
  // Keep every header line (listen.maxHeaderBytes bounds them): Node's default silently drops
  // lines past about 1000, where a second Host or a Content-Length would hide from checkFraming,
  // which refuses more than MAX_HEADER_LINES itself.
  server.maxHeadersCount = 0;
  // With a listener here node:http no longer answers `100 Continue` by itself: the handler
  // sends it only after authentication and route policy admitted the request.
  server.on('checkContinue', (req, res) => void handler(req, res, true));
  // WebSocket upgrades and CONNECT tunnels are not proxied: answer clearly rather than drop.
  server.on('upgrade', (_req, socket: Duplex) =>
    refuseOnSocket(
      socket,
      new KeygateError('not_implemented', 'protocol upgrades are not supported'),
    ),
  );
  server.on('connect', (_req, socket: Duplex) =>
    refuseOnSocket(
      socket,
      new KeygateError(
        'method_not_allowed',
        'CONNECT is not supported: keygate is not a forward proxy',
      ),
    ),
  );
  server.on('clientError', (err, socket) => {
    if (!socket.writable) return;
    const tooLarge = (err as NodeJS.ErrnoException).code === 'HPE_HEADER_OVERFLOW';
    socket.end(
      tooLarge
        ? 'HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\r\n'
        : 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n',
    );
  });
  const opsServer = createOpsServer(metrics, readiness, metricsAuth);

  let closing: Promise<number> | undefined;
  const shutdown = (drainTimeoutMs: number): Promise<number> => {
    closing ??= (async () => {
      // Not ready first, so load balancers stop sending; then stop accepting; then wait.
      readiness.draining = true;
      const inflight = await metrics.inflight.get();
      const drained = Math.round(inflight.values[0]?.value ?? 0);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timedOut = await Promise.race([
        closed.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), drainTimeoutMs).unref()),
      ]);
      if (timedOut) server.closeAllConnections();
      clearInterval(storeProbe);
      upstreamCredential?.close();
      await upstream.close();
      await lastUsed.close();
      await services.close();
      await store.close();
      if (opsServer.listening)
        await new Promise<void>((resolve) => opsServer.close(() => resolve()));
      opsServer.closeAllConnections();
      logger.info(
        { drained, timed_out: timedOut, drain_timeout_ms: drainTimeoutMs },
        timedOut
          ? `drain timeout: in-flight requests were cut off (${drained} were in flight)`
          : `shut down cleanly: drained ${drained} in-flight requests`,
      );
      await new Promise<void>((resolve) => logger.flush(() => resolve()));
      return drained;
    })();
    return closing;
  };

  return {
    server,
    opsServer,
    verifier,
    pool,
    keys,
    logger,
    store,
    lastUsed,
    metrics,
    readiness,
    listen: (port = listen.port, host = listen.host) => listenOn(server, port, host),
    listenOps: (port = config.ops.port, host = config.ops.host) => listenOn(opsServer, port, host),
    shutdown,
    close: async () => {
      await shutdown(config.listen.drainTimeout);
    },
  };
}
