import { stringify } from 'yaml';
import { type App, createApp } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { Hasher } from '../../src/keys/hasher.js';
import { createKeyRuntime } from '../../src/keys/key-runtime.js';
import type { IssuedKey } from '../../src/keys/key-service.js';
import { type Clock, systemClock } from '../../src/shared/clock.js';
import { type InvalidationBus, LocalInvalidationBus } from '../../src/store/invalidation-bus.js';
import type { KeyStore } from '../../src/store/key-store.js';
import { openStore } from '../../src/store/open-store.js';
import { loggerKeyRuntimeLog } from '../../src/telemetry/key-runtime-log.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { registerIssuedKey } from './captured-logs.js';
import { LogSink } from './log-sink.js';

/** Routes the integration tests exercise: exact, one-segment, subtree, read/write/admin scopes. */
/** The actor tests use when they manage keys outside the admin API. */
export const TEST_ACTOR = { kind: 'cli', user: 'test' } as const;

export const TEST_ROUTES = [
  { name: 'allocation', methods: ['GET'], path: '/model/allocation/**', scopes: ['read'] },
  { name: 'assets', methods: ['GET'], path: '/model/assets', scopes: ['read'] },
  { name: 'reports', methods: ['GET'], path: '/model/reports/*', scopes: ['read'] },
  { name: 'budget-write', methods: ['POST'], path: '/model/budget', scopes: ['write'] },
  { name: 'upload', methods: ['PUT', 'POST'], path: '/model/upload', scopes: ['write'] },
  { name: 'download', methods: ['GET'], path: '/model/download', scopes: ['read'] },
  { name: 'slow', methods: ['GET'], path: '/model/slow', scopes: ['read'] },
  { name: 'etl-admin', methods: ['GET'], path: '/model/etl/**', scopes: ['admin'] },
];

/** Builds a validated config the way keygate does (YAML text → parse → validate → freeze). */
export function testConfig(
  upstreamUrl: string,
  overrides: Record<string, unknown> = {},
): Readonly<Config> {
  const base: Record<string, unknown> = {
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstreamUrl, stripPrefix: '/model', connectTimeout: '2s', timeout: '5s' },
    store: { type: 'file' },
    routes: TEST_ROUTES,
    log: { level: 'info' },
  };
  return parseConfig(stringify(merge(base, overrides)), 'test-config');
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const existing = out[k];
    out[k] =
      v &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      existing &&
      typeof existing === 'object' &&
      !Array.isArray(existing)
        ? merge(existing as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export interface Gateway {
  app: App;
  url: string;
  port: number;
  logs: LogSink;
  store: KeyStore;
  issue(
    account: string,
    role: string,
    options?: { expiresAt?: number; scopes?: string[] },
  ): Promise<IssuedKey>;
  close(): Promise<void>;
}

export interface GatewayOptions {
  config: Readonly<Config>;
  /** A store the test built or wrapped; with `bus` for one shared with other replicas. */
  store?: KeyStore;
  /** Default with `store`: an in-process bus that reaches no other gateway. */
  bus?: InvalidationBus;
  clock?: Clock;
  hasher?: Hasher;
}

/** Starts keygate in-process on port 0 with captured logs. */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const logs = new LogSink();
  const { store, bus, rateLimiter } =
    options.store === undefined
      ? await openStore(options.config.store, { requireConnection: true })
      : {
          store: options.store,
          bus: options.bus ?? new LocalInvalidationBus(),
          rateLimiter: undefined,
        };
  const app = createApp({
    config: options.config,
    store,
    bus,
    logDestination: logs,
    ...(rateLimiter ? { rateLimiter } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.hasher ? { hasher: options.hasher } : {}),
  });
  const address = await app.listen(0, '127.0.0.1');
  // Every request writes one access line, when its response closes: possibly after the client
  // has its answer, and (with a buffered access log) later still. close() waits for all of them,
  // so the suite's leak oracle, run after the file, checks every line rather than those that
  // happened to be written in time.
  let requests = 0;
  app.server.on('request', () => {
    requests++;
  });
  const accessLogged = ['info', 'debug', 'trace'].includes(options.config.log.level);
  return {
    app,
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    logs,
    store,
    async issue(account, role, opts = {}) {
      if ((await store.getAccount(account)) === null) {
        await app.keys.createAccount(TEST_ACTOR, { name: account, role });
      }
      const issued = await app.keys.createKey(TEST_ACTOR, account, {
        description: `test key for ${account}`,
        ...opts,
      });
      registerIssuedKey(issued.key); // the leak oracle looks for every key a test holds
      return issued;
    },
    async close() {
      await app.close();
      if (accessLogged) await logs.waitForAccess(requests);
    },
  };
}

/**
 * Creates (if needed) an account and a key directly in the configured store, the way the CLI
 * does, for tests whose keygate runs in another process. Closes what it opened.
 */
export async function mintKey(
  config: Readonly<Config>,
  account: string,
  role: string,
  description = `test key for ${account}`,
): Promise<IssuedKey> {
  const { store, bus } = await openStore(config.store, { requireConnection: true });
  const runtime = createKeyRuntime({
    config,
    store,
    bus,
    clock: systemClock,
    log: loggerKeyRuntimeLog(createLogger('silent')),
    subscribe: false,
  });
  try {
    if ((await store.getAccount(account)) === null) {
      await runtime.service.createAccount(TEST_ACTOR, { name: account, role });
    }
    const issued = await runtime.service.createKey(TEST_ACTOR, account, { description });
    registerIssuedKey(issued.key); // the leak oracle looks for every key a test holds
    return issued;
  } finally {
    await runtime.close();
    await store.close();
  }
}
