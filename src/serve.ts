import { createApp } from './app.js';
import type { Config } from './config/schema.js';
import { openStore } from './store/open-store.js';
import { createLogger } from './telemetry/logger.js';

/** `keygate serve`: open the store, listen, and shut down cleanly on SIGTERM or SIGINT. */
export async function serve(config: Readonly<Config>, configPath: string): Promise<void> {
  const bootLogger = createLogger(config.log.level);
  const store = await openStore(config.store, {
    requireConnection: false,
    onConnectError: (err) =>
      bootLogger.warn(
        { err: String(err) },
        'key store not reachable yet; retrying in the background',
      ),
  });
  const app = createApp({ config, store });
  const address = await app.listen();
  app.logger.info(
    {
      config: configPath,
      listen: `${address.address}:${address.port}`,
      store: store.kind,
      upstream: config.upstream.url,
    },
    'keygate listening',
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal means "now": the operator does not want to wait for the drain.
      process.exit(1);
    }
    stopping = true;
    app.logger.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
