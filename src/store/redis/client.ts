import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../../config/schema.js';
import { redactUrl } from '../../shared/redact-url.js';

export type RedisConfig = Config['store']['redis'];
export type RedisClient = Redis | Cluster;

/** Capped at 1 s so a returning Redis is seen (and /readyz turns green) within a second. */
const retryDelay = (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 5), 1000);

/** Builds the client for the configured topology (single, sentinel or cluster); not yet connected. */
export function createClient(config: RedisConfig): RedisClient {
  const common: RedisOptions = {
    lazyConnect: true,
    enableAutoPipelining: true,
    // Fail fast instead of queueing while disconnected: an outage must become a quick 503.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: config.connectTimeoutMs,
    retryStrategy: retryDelay,
  };
  if (config.cluster) {
    const nodes = config.cluster.nodes.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port || 6379) };
    });
    return new Cluster(nodes, {
      lazyConnect: true,
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: retryDelay,
      redisOptions: {
        ...common,
        ...(config.cluster.password ? { password: config.cluster.password } : {}),
        ...(config.cluster.tls ? { tls: {} } : {}),
      },
    });
  }
  if (config.sentinel) {
    const s = config.sentinel;
    return new Redis({
      ...common,
      name: s.name,
      sentinels: s.sentinels,
      db: s.db,
      ...(s.password ? { password: s.password } : {}),
      ...(s.sentinelPassword ? { sentinelPassword: s.sentinelPassword } : {}),
      ...(s.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    });
  }
  return new Redis(config.url ?? 'redis://127.0.0.1:6379/0', common);
}

/**
 * A second connection to the same Redis for pub/sub. A subscriber must wait for Redis rather
 * than fail fast: offline queue on, no command timeout.
 */
export function duplicateForSubscriber(client: RedisClient): RedisClient {
  return client instanceof Cluster
    ? client.duplicate(undefined, { enableOfflineQueue: true, lazyConnect: false })
    : client.duplicate({ enableOfflineQueue: true, lazyConnect: false, commandTimeout: undefined });
}

/** PING every master (a cluster is only usable if all its masters answer). */
export async function pingAll(client: RedisClient): Promise<void> {
  if (client instanceof Cluster) {
    await Promise.all(client.nodes('master').map((node) => node.ping()));
  } else {
    await client.ping();
  }
}

/** Where the store points, for messages: never the password. */
export function describeTarget(config: RedisConfig): string {
  if (config.cluster) return `cluster ${config.cluster.nodes.map(redactUrl).join(', ')}`;
  if (config.sentinel) {
    const s = config.sentinel;
    return `sentinel master "${s.name}" via ${s.sentinels.map((n) => `${n.host}:${n.port}`).join(', ')}`;
  }
  return redactUrl(config.url ?? 'redis://127.0.0.1:6379/0');
}
