import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Config } from '../../src/config/schema.js';
import { testConfig } from '../../test/helpers/gateway.js';
import { freePort } from '../../test/helpers/redis-server.js';
import { type Server, startServer } from './measure.js';

/**
 * Node flags keygate runs with in its image (the Dockerfile's ENTRYPOINT): none. A 4 MB
 * semi-space was tried and measured at +13 % CPU per request for 17 MB less RSS under load.
 */
export const DEPLOYED_NODE_ARGS: string[] = [];

export interface BenchKeygate {
  server: Server;
  opsPort: number;
  /** The same settings as a validated config, for minting keys into its store. */
  config: Readonly<Config>;
}

/**
 * keygate as deployed: the built CLI (`node dist/cli.js serve`), Redis store, info-level access
 * logs to a file, proxy and ops ports picked by the OS.
 */
export async function startKeygate(options: {
  work: string;
  upstreamUrl: string;
  redisUrl: string;
  routes: Array<{ name: string; methods: string[]; path: string; scopes: string[] }>;
  nodeArgs?: string[];
  /** Another build of the CLI (an A/B variant); default dist/cli.js. */
  cli?: string;
  /** Access lines are written at info; `warn` measures the path without them. */
  logLevel?: string;
  /** Config file name inside `work`, so several variants can share one directory. */
  name?: string;
  /** More config (e.g. `mode: authz`, `authz: {cacheTtl}` for scenario (h)). */
  extra?: Record<string, unknown>;
}): Promise<BenchKeygate> {
  // Below info keygate announces nothing: pick its ports here and probe the proxy port.
  const quiet = !['info', 'debug', 'trace'].includes(options.logLevel ?? 'info');
  const ports = quiet ? [await freePort(), await freePort()] : [0, 0];
  const settings = { store: { type: 'redis', redis: { url: options.redisUrl } } };
  const configFile = join(options.work, `${options.name ?? 'keygate'}.yaml`);
  writeFileSync(
    configFile,
    stringify({
      listen: { host: '127.0.0.1', port: ports[0] },
      ops: { host: '127.0.0.1', port: ports[1] },
      upstream: { url: options.upstreamUrl, stripPrefix: '/model' },
      routes: options.routes,
      ...settings,
      log: { level: options.logLevel ?? 'info' },
      ...options.extra,
    }),
  );
  const server = await startServer(
    process.execPath,
    [
      ...DEPLOYED_NODE_ARGS,
      ...(options.nodeArgs ?? []),
      options.cli ?? 'dist/cli.js',
      'serve',
      '--config',
      configFile,
    ],
    {
      ready: /"listen":"[^"]*:(\d+)","ops":"[^"]*:(\d+)"/,
      logFile: join(options.work, `${options.name ?? 'keygate'}.log`),
      ...(quiet
        ? {
            probe: async () =>
              (await accepts(ports[1] as number))
                ? `"listen":"127.0.0.1:${ports[0]}","ops":"127.0.0.1:${ports[1]}"`
                : undefined,
          }
        : {}),
    },
  );
  return {
    server,
    opsPort: Number(/"ops":"[^"]*:(\d+)"/.exec(server.readyLine)?.[1]),
    config: testConfig(options.upstreamUrl, settings),
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
