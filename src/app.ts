import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import { planReload, type ReloadPlan } from './config/reload-plan.js';
import type { Config } from './config/schema.js';
import { BoundedUpstreamClient } from './forward/bounded-upstream.js';
import { NO_UPSTREAM } from './forward/no-upstream.js';
import { UndiciUpstreamClient, type UpstreamClient } from './forward/upstream-client.js';
import { openUpstreamCredential } from './forward/upstream-credential.js';
import type { Hasher } from './keys/hasher.js';
import { KeyExpiryMonitor } from './keys/key-expiry.js';
import { createKeyRuntime } from './keys/key-runtime.js';
import type { KeyService } from './keys/key-service.js';
import { KeyUseCounter, MAX_PENDING_KEY_USES } from './keys/key-use-counter.js';
import { LastUsedRecorder } from './keys/last-used.js';
import { createRequestHandler, type PipelineDeps } from './pipeline/handle-request.js';
import { createProxyListener } from './pipeline/http-listener.js';
import { ReloadablePolicy } from './pipeline/reloadable-policy.js';
import { requestPolicy } from './pipeline/request-policy.js';
import { InflightLimit } from './policy/inflight-limit.js';
import { RateLimitGate, rateLimitSettings } from './policy/rate-limit-gate.js';
import { InProcessRateLimiter, type RateLimiter } from './policy/rate-limiter.js';
import { type Clock, systemClock } from './shared/clock.js';
import { instrumentKeyStore } from './store/instrumented-key-store.js';
import type { InvalidationBus } from './store/invalidation-bus.js';
import type { KeyStore } from './store/key-store.js';
import { jsonAccessLog } from './telemetry/access-log.js';
import { loggerKeyRuntimeLog } from './telemetry/key-runtime-log.js';
import { createLogger, type Logger } from './telemetry/logger.js';
import { Metrics } from './telemetry/metrics.js';
import { MetricsAuth } from './telemetry/metrics-auth.js';
import { createOpsServer, listenOn, Readiness } from './telemetry/ops-server.js';

export interface AppDeps {
  config: Readonly<Config>;
  store: KeyStore;
  /** The bus openStore chose with the store (tests on a memory store: a LocalInvalidationBus). */
  bus: InvalidationBus;
  clock?: Clock;
  hasher?: Hasher;
  upstream?: UpstreamClient;
  /** Where log lines go (tests capture them); stdout by default. Ignored when `logger` is given. */
  logDestination?: DestinationStream;
  /** Counts per-account quotas; openStore's for Redis. Default: in process, on `clock`. */
  rateLimiter?: RateLimiter;
  /** How often key last-use marks and request counts are written (tests shorten it). */
  lastUsedFlushMs?: number;
  /** A logger already in use (serve logs start-up before the app exists: one stream, in order). */
  logger?: Logger;
}

export interface App {
  readonly server: Server;
  readonly opsServer: Server;
  readonly lastUsed: LastUsedRecorder;
  /** Per-key request counts; flush() writes what is pending now. */
  readonly keyUses: KeyUseCounter;
  /** Refreshes keygate_keys_expiring every ops.keyExpiryRefresh; refresh() runs one scan now. */
  readonly keyExpiry: KeyExpiryMonitor;
  readonly metrics: Metrics;
  readonly keys: KeyService;
  /**
   * Applies a validated config to new requests (see reload-plan.ts for what can change without
   * a restart). Nothing is applied when the plan has problems. Synchronous: a request that
   * arrives after it returns runs under the new policy.
   */
  reload(next: Readonly<Config>): ReloadPlan;
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
  const metrics = new Metrics({
    accountLabel: config.metrics.accountLabel,
    credentialReloads: config.upstream?.credential !== undefined,
  });
  // Before any worker or timer: a missing or bad credential file is a config error (exit 2).
  const upstreamCredential = openUpstreamCredential(config.upstream?.credential, logger, metrics);
  // Everything reads the store through this wrapper, which counts unreachable-store failures.
  const store = instrumentKeyStore(deps.store, (op) => metrics.storeFailed(op));
  const runtime = createKeyRuntime({
    config,
    store,
    bus: deps.bus,
    clock,
    hasher: deps.hasher,
    log: loggerKeyRuntimeLog(logger),
    subscribe: true,
    observer: {
      cacheEvent: (event) => metrics.keyCacheEvent(event),
      verifyDuration: (seconds) => metrics.keyVerified(seconds),
      watchQueueDepth: (read) => metrics.watchQueueDepth(read),
    },
  });
  const { verifier, service: keys } = runtime;
  const lastUsed = new LastUsedRecorder({
    store,
    clock,
    intervalSeconds: LAST_USED_INTERVAL_SECONDS,
    flushMs: deps.lastUsedFlushMs ?? 5000,
    onError: (err) =>
      logger.warn({ err: String(err) }, 'could not record key last-use times; will retry'),
  });
  lastUsed.start();
  const keyUses = new KeyUseCounter({
    store,
    flushMs: deps.lastUsedFlushMs ?? 5000,
    maxPendingKeys: MAX_PENDING_KEY_USES,
    onError: (err) =>
      logger.warn({ err: String(err) }, 'could not record key request counts; will retry'),
    onDropped: (requests) => metrics.keyUsesDropped(requests),
  });
  keyUses.start();
  const readiness = new Readiness(store, metrics);
  // keygate_keys_expiring: a scan of all keys every ops.keyExpiryRefresh, off the request path.
  const keyExpiry = new KeyExpiryMonitor({
    store,
    clock,
    intervalMs: config.ops.keyExpiryRefreshMs,
    inUseSeconds: Math.round(config.ops.keyInUseWithinMs / 1000),
    publish: (counts) => metrics.keysExpiring(counts),
    onError: (err) =>
      logger.warn({ err: String(err) }, 'could not refresh keygate_keys_expiring; will retry'),
  });
  keyExpiry.start();
  // store_up follows the store even when nobody polls /readyz.
  const storeProbe = setInterval(() => void readiness.check(), STORE_PROBE_MS);
  storeProbe.unref();
  void readiness.check();

  // The undici pool's own queue is unbounded: the wrapper answers 503 beyond connections + queue.
  // No upstream (mode authz, DESIGN §13): no pool is built and nothing can be forwarded.
  const upstreamConfig = config.upstream;
  const upstream =
    upstreamConfig === undefined
      ? NO_UPSTREAM
      : new BoundedUpstreamClient(
          deps.upstream ??
            new UndiciUpstreamClient({
              url: upstreamConfig.url,
              connections: upstreamConfig.connections,
              connectTimeoutMs: upstreamConfig.connectTimeoutMs,
              timeoutMs: upstreamConfig.timeoutMs,
            }),
          upstreamConfig.connections + upstreamConfig.queue,
        );
  const basePath = upstreamConfig === undefined ? '/' : new URL(upstreamConfig.url).pathname;
  const inflight = new InflightLimit(config.listen.maxInflightPerAccount);
  // Redis: counted on Redis, shared by replicas; any other store: in this process.
  const rateLimits = new RateLimitGate(
    deps.rateLimiter ?? new InProcessRateLimiter(clock),
    rateLimitSettings(config.rateLimits, config.rateLimitStoreDown),
    (result, account) => metrics.rateLimitDecided(result, account),
  );
  // What no reload changes; the reloadable rest comes from requestPolicy(config).
  const fixed: Omit<PipelineDeps, keyof ReturnType<typeof requestPolicy>> = {
    verifier,
    upstream,
    logger,
    accessLog: jsonAccessLog(logger),
    metrics,
    upstreamBasePath: basePath === '/' ? '' : basePath.replace(/\/$/, ''),
    mode: config.mode,
    keyPrefix: config.keys.prefix,
    keys,
    lastUsed,
    keyUses,
    isDraining: () => readiness.draining,
    inflight,
    rateLimits,
  };
  // The one holder a reload swaps; the handler reads it once per request.
  const policy = new ReloadablePolicy<PipelineDeps>({
    ...fixed,
    ...requestPolicy(config, upstreamCredential),
  });
  const pipeline = createRequestHandler(policy);
  let running = config;
  const formerIdentity = new Set<string>();
  const reload = (next: Readonly<Config>): ReloadPlan => {
    const plan = planReload(running, next);
    if (plan.problems.length > 0) return plan;
    // Names keygate stops sending stay dropped from clients (see requestPolicy).
    const current = Object.values(plan.effective.identityHeaders).map((n) => n.toLowerCase());
    for (const name of Object.values(running.identityHeaders))
      formerIdentity.add(name.toLowerCase());
    for (const name of current) formerIdentity.delete(name);
    // Built before anything changes: nothing below can fail half-way.
    const nextPolicy = {
      ...fixed,
      ...requestPolicy(plan.effective, upstreamCredential, [...formerIdentity]),
    };
    running = plan.effective;
    // Roles first: the verifier drops allows whose scopes came from the old roles before any
    // request can run under the new routes.
    if (plan.applied.some((p) => p === 'roles' || p.startsWith('roles.'))) {
      runtime.setRoles(running.roles);
    }
    inflight.setMax(running.listen.maxInflightPerAccount);
    rateLimits.setSettings(rateLimitSettings(running.rateLimits, running.rateLimitStoreDown));
    logger.level = running.log.level;
    policy.swap(nextPolicy);
    return plan;
  };

  const { listen } = config;
  const server = createProxyListener(listen, pipeline);
  const opsServer = createOpsServer(metrics, readiness, metricsAuth);

  let closing: Promise<number> | undefined;
  const shutdown = (drainTimeoutMs: number): Promise<number> => {
    closing ??= (async () => {
      // Not ready first, so load balancers stop sending; then stop accepting; then wait.
      readiness.draining = true;
      const drained = pipeline.inFlight;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timedOut = await Promise.race([
        closed.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), drainTimeoutMs).unref()),
      ]);
      if (timedOut) server.closeAllConnections();
      clearInterval(storeProbe);
      await keyExpiry.close();
      upstreamCredential?.close();
      await upstream.close();
      await lastUsed.close();
      await keyUses.close();
      await runtime.close();
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
    keys,
    lastUsed,
    keyUses,
    keyExpiry,
    metrics,
    reload,
    listen: (port = listen.port, host = listen.host) => listenOn(server, port, host),
    listenOps: (port = config.ops.port, host = config.ops.host) => listenOn(opsServer, port, host),
    shutdown,
    close: async () => {
      await shutdown(config.listen.drainTimeoutMs);
    },
  };
}
