import { describe, expect, it } from 'vitest';
import { parseDurationMs } from '../../../src/config/duration.js';
import { ConfigError, parseConfig } from '../../../src/config/load.js';

const MIN = 'upstream: { url: "http://127.0.0.1:9004" }\n';

function problems(yaml: string, env: NodeJS.ProcessEnv = {}) {
  try {
    parseConfig(yaml, 'test.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('parseDurationMs', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['24h', 86_400_000],
    ['90d', 7_776_000_000],
    [30, 30_000],
    ['30', 30_000],
    [0.5, 500],
    ['1.5s', 1500],
  ] as const)('%j → %d ms', (input, ms) => {
    expect(parseDurationMs(input)).toBe(ms);
  });
  it.each(['', '30 seconds', '5w', '-1s', 'abc', null, {}, -5])('%j is not a duration', (input) => {
    expect(parseDurationMs(input)).toBeUndefined();
  });
});

describe('parseConfig', () => {
  it('fills the documented defaults and freezes the result', () => {
    const config = parseConfig(MIN, 't');
    expect(config.listen).toEqual({
      host: '0.0.0.0',
      port: 8080,
      maxHeaderBytes: 32 * 1024,
      headersTimeout: 60_000,
      requestTimeout: 300_000,
      keepAliveTimeout: 65_000,
      drainTimeout: 25_000,
      bodyIdleTimeout: 15_000,
      maxInflightPerAccount: 64,
    });
    expect(config.ops).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(config.upstream.queue).toBe(256);
    expect(config.upstream.dropHeaders).toEqual([]);
    expect(config.keys.failureBudget).toEqual({ perKeyId: 10, perAddress: 30, window: 60_000 });
    expect(config.upstream.timeout).toBe(300_000);
    expect(config.store.type).toBe('file');
    expect(config.keys.argon2).toEqual({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    expect(config.keys.cacheTtl).toBe(30_000);
    expect(config.roles).toEqual({
      admin: ['read', 'write', 'admin'],
      member: ['read', 'write'],
      reader: ['read'],
    });
    expect(config.identityHeaders.account).toBe('X-Keygate-Account');
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.keys.argon2)).toBe(true);
    expect(() => {
      (config.listen as { port: number }).port = 1;
    }).toThrow();
  });

  it('applies KEYGATE_* env overrides over the file', () => {
    const config = parseConfig(`${MIN}store: { type: file }\n`, 't', {
      KEYGATE_PORT: '9000',
      KEYGATE_OPS_PORT: '9001',
      KEYGATE_UPSTREAM_URL: 'http://agg:9004',
      KEYGATE_STORE: 'redis',
      KEYGATE_REDIS_URL: 'redis://r:6379/1',
      KEYGATE_FILE_PATH: '/data/k.json',
      KEYGATE_LOG_LEVEL: 'debug',
    });
    expect(config.listen.port).toBe(9000);
    expect(config.ops.port).toBe(9001);
    expect(config.upstream.url).toBe('http://agg:9004');
    expect(config.store.type).toBe('redis');
    expect(config.store.redis.url).toBe('redis://r:6379/1');
    expect(config.store.file.path).toBe('/data/k.json');
    expect(config.log.level).toBe('debug');
  });

  it.each([
    ['unknown top-level key', `${MIN}lisen: {}\n`, 'lisen'],
    ['unknown nested key', `${MIN}keys: { cacheTTL: 5s }\n`, 'keys.cacheTTL'],
    ['port out of range', `${MIN}listen: { port: 70000 }\n`, 'listen.port'],
    ['bad upstream scheme', 'upstream: { url: "ftp://x" }\n', 'upstream.url'],
    ['bad stripPrefix', `${MIN.replace('}', ', stripPrefix: model }')}`, 'upstream.stripPrefix'],
    ['bad key prefix', `${MIN}keys: { prefix: "k_g" }\n`, 'keys.prefix'],
    ['bad trusted proxy', `${MIN}trustedProxies: ["10.0.0.0/33"]\n`, 'trustedProxies[0]'],
    [
      'two redis modes',
      `${MIN}store: { redis: { url: "redis://a", cluster: { nodes: ["redis://b"] } } }\n`,
      'store.redis',
    ],
    [
      'duplicate route name',
      `${MIN}routes:\n  - { name: a, methods: [GET], path: /a, scopes: [read] }\n  - { name: a, methods: [GET], path: /b, scopes: [read] }\n`,
      'routes[1].name',
    ],
    [
      'empty methods',
      `${MIN}routes:\n  - { name: a, methods: [], path: /a, scopes: [read] }\n`,
      'routes[0].methods',
    ],
    [
      'trailing slash pattern',
      `${MIN}routes:\n  - { name: a, methods: [GET], path: /a/, scopes: [read] }\n`,
      'routes[0].path',
    ],
    ['duplicate YAML key', `${MIN}log: { level: info }\nlog: { level: debug }\n`, ''],
    ['not a mapping', '- a\n- b\n', ''],
  ])('%s is reported at %j', (_name, yaml, path) => {
    const found = problems(yaml);
    expect(found.map((p) => p.path)).toContain(path);
    for (const p of found) expect(p.message.length).toBeGreaterThan(3);
  });

  it('names the env variable when an override is the problem', () => {
    const found = problems(MIN, { KEYGATE_LOG_LEVEL: 'loud' });
    expect(found[0]).toMatchObject({ path: 'log.level' });
    expect(found[0]?.message).toContain('KEYGATE_LOG_LEVEL');
  });

  it('reports every problem at once, not just the first', () => {
    expect(problems('listen: { port: "x" }\nlog: { level: loud }\n').length).toBeGreaterThanOrEqual(
      3,
    );
  });
});
