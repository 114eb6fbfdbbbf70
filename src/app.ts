import { randomUUID } from 'node:crypto';
import { createServer, type Server, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { DestinationStream } from 'pino';
import type { Config } from './config/schema.js';
import { KeygateError, toErrorBody } from './errors.js';
import { RequestHeaderBuilder, trustedProxyList } from './forward/request-headers.js';
import { UndiciUpstreamClient, type UpstreamClient } from './forward/upstream-client.js';
import { WorkerArgon2Hasher } from './keys/argon2-workers.js';
import type { Hasher } from './keys/hasher.js';
import { KeyService } from './keys/key-service.js';
import { KeyVerifier } from './keys/verifier.js';
import { VerifyPool } from './keys/verify-pool.js';
import { createRequestHandler } from './pipeline/handle-request.js';
import { RouteTable } from './policy/route-table.js';
import { type Clock, systemClock } from './shared/clock.js';
import type { KeyStore } from './store/key-store.js';
import { createLogger, type Logger } from './telemetry/logger.js';

export interface AppDeps {
  config: Readonly<Config>;
  store: KeyStore;
  clock?: Clock;
  hasher?: Hasher;
  upstream?: UpstreamClient;
  /** Where log lines go (tests capture them); stdout by default. Ignored when `logger` is given. */
  logDestination?: DestinationStream;
  /** A logger already in use (serve logs start-up before the app exists: one stream, in order). */
  logger?: Logger;
}

export interface App {
  readonly server: Server;
  readonly verifier: KeyVerifier;
  readonly pool: VerifyPool;
  readonly keys: KeyService;
  readonly logger: Logger;
  readonly store: KeyStore;
  listen(port?: number, host?: string): Promise<AddressInfo>;
  /** Stops accepting, waits for in-flight requests, then closes the upstream pool and the store. */
  close(): Promise<void>;
}

const MAX_HEADER_BYTES = 32 * 1024;

/** Writes a JSON error straight onto a socket that has left the request/response cycle. */
function refuseOnSocket(socket: Duplex, err: KeygateError): void {
  const body = JSON.stringify(toErrorBody(err, randomUUID()));
  socket.end(
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Key services without a listener: what the CLI needs to manage accounts and keys. */
export function createKeyServices(
  config: Readonly<Config>,
  store: KeyStore,
  clock: Clock,
  hasher?: Hasher,
) {
  const pool = new VerifyPool(config.keys.verifyConcurrency, config.keys.verifyQueue);
  const h = hasher ?? new WorkerArgon2Hasher(config.keys.argon2, config.keys.verifyConcurrency);
  const keys = new KeyService({
    store,
    hasher: h,
    pool,
    clock,
    prefix: config.keys.prefix,
    roles: config.roles,
  });
  return { pool, hasher: h, keys };
}

/** The composition root: every long-lived object is built here, once, and passed in. */
export function createApp(deps: AppDeps): App {
  const { config, store } = deps;
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger(config.log.level, deps.logDestination);
  const { pool, hasher, keys } = createKeyServices(config, store, clock, deps.hasher);
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
  });
  const upstream =
    deps.upstream ??
    new UndiciUpstreamClient({
      url: config.upstream.url,
      connections: config.upstream.connections,
      connectTimeoutMs: config.upstream.connectTimeout,
      timeoutMs: config.upstream.timeout,
    });
  const upstreamUrl = new URL(config.upstream.url);
  const handler = createRequestHandler({
    verifier,
    routes: new RouteTable(config.routes),
    headers: new RequestHeaderBuilder(
      config.identityHeaders,
      trustedProxyList(config.trustedProxies),
      config.trustedProxies.length > 0,
    ),
    upstream,
    logger,
    upstreamBasePath: upstreamUrl.pathname === '/' ? '' : upstreamUrl.pathname.replace(/\/$/, ''),
    stripPrefix: config.upstream.stripPrefix,
    keyPrefix: config.keys.prefix,
  });

  const server = createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      requestTimeout: 300_000,
      headersTimeout: 60_000,
      keepAliveTimeout: 65_000,
    },
    (req, res) => void handler(req, res),
  );
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

  let closing: Promise<void> | undefined;
  return {
    server,
    verifier,
    pool,
    keys,
    logger,
    store,
    listen(port = config.listen.port, host = config.listen.host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        });
        await upstream.close();
        await store.close();
        await hasher.close?.();
        await new Promise<void>((resolve) => logger.flush(() => resolve()));
      })();
      return closing;
    },
  };
}
