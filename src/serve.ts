import { createApp } from './app.js';
import { ConfigReloader } from './config/config-reloader.js';
import { DirectoryConfigWatcher } from './config/config-watcher.js';
import type { Config } from './config/schema.js';
import { redactUrl } from './shared/redact-url.js';
import { openStore } from './store/open-store.js';
import { createLogger } from './telemetry/logger.js';

/** Logs at most one store error per 10 s: a down Redis must not flood the logs. */
function throttled(log: (err: Error) => void): (err: Error) => void {
  let last = 0;
  return (err) => {
    const now = Date.now();
    if (now - last >= 10_000) {
      last = now;
      log(err);
    }
  };
}

/** `keygate serve`: open the store, listen, and shut down cleanly on SIGTERM or SIGINT. */
export async function serve(
  config: Readonly<Config>,
  configPath: string,
  configText: string,
): Promise<void> {
  const logger = createLogger(config.log.level);
  // One logger for the whole process: start-up lines and access lines share one ordered stream.
  const { store, bus, rateLimiter } = await openStore(config.store, {
    requireConnection: false,
    onConnectError: (err) =>
      logger.warn({ err: String(err) }, 'key store not reachable yet; retrying in the background'),
    onError: throttled((err) => logger.warn({ err: err.message }, 'key store connection error')),
  });
  let app: ReturnType<typeof createApp>;
  try {
    app = createApp({ config, store, bus, logger, ...(rateLimiter ? { rateLimiter } : {}) });
  } catch (err) {
    // e.g. an unreadable metrics token file: release the store (and its lock) before exit 2.
    await bus.close();
    await store.close();
    throw err;
  }
  const address = await app.listen();
  const ops = await app.listenOps();
  logger.info(
    {
      config: configPath,
      listen: `${address.address}:${address.port}`,
      ops: `${ops.address}:${ops.port}`,
      store: store.kind,
      mode: config.mode,
      upstream: config.upstream === undefined ? undefined : redactUrl(config.upstream.url),
    },
    'keygate listening',
  );

  // SIGHUP or a change of the file (a ConfigMap update): re-read, validate, apply what can
  // change without a restart, or keep serving the running config (config-reloader.ts).
  const reloader = new ConfigReloader({
    file: configPath,
    env: process.env,
    initialText: configText,
    apply: (next) => app.reload(next),
    log: logger,
    counted: (result, at) => app.metrics.configReloaded(result, at),
  });
  const watcher = new DirectoryConfigWatcher(configPath);
  reloader.watch(watcher);
  process.on('SIGHUP', () => {
    logger.info({ signal: 'SIGHUP', config: configPath }, 'SIGHUP: reloading the config');
    reloader.reload('signal');
  });

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal means "now": the operator does not want to wait for the drain.
      logger.warn({ signal }, 'second signal: exiting without waiting for in-flight requests');
      logger.flush();
      process.exit(1);
    }
    stopping = true;
    watcher.close();
    logger.info(
      { signal, drain_timeout_ms: config.listen.drainTimeoutMs },
      'shutting down: draining in-flight requests',
    );
    app.shutdown(config.listen.drainTimeoutMs).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
