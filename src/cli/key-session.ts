import { userInfo } from 'node:os';
import { pino } from 'pino';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { KeyManagement } from '../keys/key-management.js';
import { createKeyRuntime } from '../keys/key-runtime.js';
import type { Actor } from '../keys/key-service.js';
import { systemClock } from '../shared/clock.js';
import { openStore } from '../store/open-store.js';
import { loggerKeyRuntimeLog } from '../telemetry/key-runtime-log.js';
import { createLogger } from '../telemetry/logger.js';

/**
 * Opens the configured store, runs one management command through the key runtime the server
 * uses too (so its writes are invalidated and confirmed the same way), then closes everything.
 */
export async function withKeys(
  configFile: string | undefined,
  run: (keys: KeyManagement, actor: Actor) => Promise<number>,
): Promise<number> {
  const config: Readonly<Config> = loadConfig({ file: configFile });
  // Audit lines go to stderr, synchronously: stdout stays clean for keys and --json output.
  const logger = createLogger(config.log.level, pino.destination({ dest: 2, sync: true }));
  const { store, bus } = await openStore(config.store, { requireConnection: true });
  // No subscription: the CLI verifies no request, it only publishes its own writes.
  const runtime = createKeyRuntime({
    config,
    store,
    bus,
    clock: systemClock,
    log: loggerKeyRuntimeLog(logger),
    subscribe: false,
  });
  try {
    return await run(runtime.service, { kind: 'cli', user: cliUser() });
  } finally {
    await runtime.close();
    await store.close();
  }
}

function cliUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
