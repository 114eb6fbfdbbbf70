import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Config } from '../../src/config/schema.js';
import { testConfig } from '../../test/helpers/gateway.js';
import { type Server, startServer } from './measure.js';

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
}): Promise<BenchKeygate> {
  const settings = { store: { type: 'redis', redis: { url: options.redisUrl } } };
  const configFile = join(options.work, 'keygate.yaml');
  writeFileSync(
    configFile,
    stringify({
      listen: { host: '127.0.0.1', port: 0 },
      ops: { host: '127.0.0.1', port: 0 },
      upstream: { url: options.upstreamUrl, stripPrefix: '/model' },
      routes: options.routes,
      ...settings,
      log: { level: 'info' },
    }),
  );
  const server = await startServer(
    process.execPath,
    [...(options.nodeArgs ?? []), 'dist/cli.js', 'serve', '--config', configFile],
    {
      ready: /"listen":"[^"]*:(\d+)","ops":"[^"]*:(\d+)"/,
      logFile: join(options.work, 'keygate.log'),
    },
  );
  return {
    server,
    opsPort: Number(/"ops":"[^"]*:(\d+)"/.exec(server.readyLine)?.[1]),
    config: testConfig(options.upstreamUrl, settings),
  };
}
