import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../../../src/config/load.js';
import { diffPaths, planReload, userPath } from '../../../src/config/reload-plan.js';
import type { Config } from '../../../src/config/schema.js';

const BASE = {
  listen: { host: '127.0.0.1', port: 8080 },
  upstream: { url: 'http://127.0.0.1:9003', stripPrefix: '/model' },
  routes: [
    { name: 'allocation', methods: ['GET'], path: '/model/allocation/**', scopes: ['read'] },
    { name: 'assets', methods: ['GET'], path: '/model/assets', scopes: ['read'] },
  ],
};

function config(overrides: Record<string, unknown> = {}): Readonly<Config> {
  return parseConfig(stringify({ ...BASE, ...overrides }), 'test.yaml');
}

describe('planReload: what a reload applies and what needs a restart', () => {
  it('the same config: nothing applied, nothing to restart, no problems', () => {
    const plan = planReload(config(), config());
    expect(plan).toMatchObject({ applied: [], needsRestart: [], problems: [] });
  });

  it('a removed route is applied; the effective config has the new route list', () => {
    const next = config({ routes: [BASE.routes[0]] });
    const plan = planReload(config(), next);
    expect(plan.applied).toEqual(['routes']);
    expect(plan.needsRestart).toEqual([]);
    expect(plan.effective.routes.map((r) => r.name)).toEqual(['allocation']);
  });

  it('roles, identity headers, trusted proxies, dropHeaders, stripPrefix, authz.cacheTtl, maxInflightPerAccount, bodyIdleTimeout and log.level apply', () => {
    const next = config({
      roles: {
        admin: ['read', 'write', 'admin'],
        member: ['read', 'write'],
        reader: ['read'],
        audit: ['read'],
      },
      identityHeaders: { account: 'X-Tenant' },
      trustedProxies: ['10.0.0.0/8'],
      upstream: { url: BASE.upstream.url, stripPrefix: '/api', dropHeaders: ['x-internal-*'] },
      authz: { cacheTtl: '5s' },
      listen: { ...BASE.listen, maxInflightPerAccount: 3, bodyIdleTimeout: '2s' },
      log: { level: 'warn' },
    });
    const plan = planReload(config(), next);
    expect(plan.needsRestart).toEqual([]);
    expect([...plan.applied].sort()).toEqual(
      [
        'roles.audit',
        'identityHeaders.account',
        'trustedProxies',
        'upstream.stripPrefix',
        'upstream.dropHeaders',
        'authz.cacheTtl',
        'listen.maxInflightPerAccount',
        'listen.bodyIdleTimeout',
        'log.level',
      ].sort(),
    );
    const e = plan.effective;
    expect(e.identityHeaders.account).toBe('X-Tenant');
    expect(e.upstream?.stripPrefix).toBe('/api');
    expect(e.upstream?.dropHeaders).toEqual(['x-internal-*']);
    expect(e.authz.cacheTtlMs).toBe(5000);
    expect(e.listen.maxInflightPerAccount).toBe(3);
    expect(e.listen.bodyIdleTimeoutMs).toBe(2000);
    expect(e.log.level).toBe('warn');
    expect(Object.isFrozen(e) && Object.isFrozen(e.listen)).toBe(true);
  });

  it('a stripPrefix removed from the file is removed from the running policy', () => {
    const plan = planReload(config(), config({ upstream: { url: BASE.upstream.url } }));
    expect(plan.applied).toEqual(['upstream.stripPrefix']);
    expect(plan.effective.upstream && 'stripPrefix' in plan.effective.upstream).toBe(false);
  });

  it('restart-only fields are named by the path the user writes, and keep their running value', () => {
    const running = config();
    const next = config({
      listen: { host: '0.0.0.0', port: 9090, keepAliveTimeout: '10s' },
      ops: { port: 9999 },
      store: { type: 'redis', redis: { url: 'redis://r:6379' } },
      upstream: { url: 'http://127.0.0.2:9003', stripPrefix: '/model', connections: 8 },
      keys: { prefix: 'kx', argon2: { timeCost: 3 }, cacheTtl: '1m' },
      metrics: { accountLabel: false },
      routes: [BASE.routes[0]],
    });
    const plan = planReload(running, next);
    expect([...plan.needsRestart].sort()).toEqual(
      [
        'listen.host',
        'listen.port',
        'listen.keepAliveTimeout',
        'ops.port',
        'store.type',
        'store.redis.url',
        'upstream.url',
        'upstream.connections',
        'keys.prefix',
        'keys.argon2.timeCost',
        'keys.cacheTtl',
        'metrics.accountLabel',
      ].sort(),
    );
    expect(plan.applied).toEqual(['routes']);
    const e = plan.effective;
    expect(e.listen.port).toBe(8080);
    expect(e.listen.host).toBe('127.0.0.1');
    expect(e.listen.keepAliveTimeoutMs).toBe(running.listen.keepAliveTimeoutMs);
    expect(e.ops).toEqual(running.ops);
    expect(e.store).toEqual(running.store);
    expect(e.keys).toEqual(running.keys);
    expect(e.metrics).toEqual(running.metrics);
    expect(e.upstream?.url).toBe(BASE.upstream.url);
    expect(e.upstream?.connections).toBe(running.upstream?.connections);
    expect(e.routes).toHaveLength(1);
  });

  it('mode and the presence of upstream need a restart; the running upstream stays', () => {
    const running = config();
    const next = parseConfig(
      stringify({ mode: 'authz', routes: BASE.routes, upstream: undefined }),
      'test.yaml',
    );
    const plan = planReload(running, next);
    expect(plan.needsRestart).toEqual(expect.arrayContaining(['mode', 'upstream']));
    expect(plan.effective.mode).toBe('proxy');
    expect(plan.effective.upstream?.url).toBe(BASE.upstream.url);
  });

  it('a new identity header equal to the running credential header is a problem (the file alone is valid)', () => {
    const running = config({
      upstream: { ...BASE.upstream, credential: { header: 'X-Upstream-Token', file: '/x' } },
    });
    const next = config({
      upstream: { ...BASE.upstream, credential: { header: 'X-Other', file: '/x' } },
      identityHeaders: { role: 'x-UPSTREAM-token' },
    });
    const plan = planReload(running, next);
    expect(plan.needsRestart).toContain('upstream.credential.header');
    expect(plan.problems).toEqual([
      { path: 'identityHeaders.role', message: expect.stringContaining('needs a restart') },
    ]);
  });

  it('role names that are Object.prototype names diff as plain keys', () => {
    const next = parseConfig(
      `${stringify(BASE)}roles:\n  admin: [read]\n  constructor: [read]\n  tostring: [read]\n`,
      'test.yaml',
    );
    const running = parseConfig(`${stringify(BASE)}roles:\n  admin: [read]\n`, 'test.yaml');
    const plan = planReload(running, next);
    expect([...plan.applied].sort()).toEqual(['roles.constructor', 'roles.tostring']);
    expect(Object.hasOwn(plan.effective.roles, 'constructor')).toBe(true);
  });

  it('diffPaths sees an own "__proto__" key of a null-prototype record and never an inherited one', () => {
    const a = Object.create(null) as Record<string, unknown>;
    const b = Object.create(null) as Record<string, unknown>;
    Object.defineProperty(b, '__proto__', { value: ['read'], enumerable: true });
    expect(diffPaths({ roles: a }, { roles: b }, '')).toEqual(['roles.__proto__']);
    expect(diffPaths({ roles: {} }, { roles: { toString: undefined } }, '')).toEqual([]);
  });
});

describe('diffPaths', () => {
  it('property: equal values have no difference; any changed leaf is reported by its path', () => {
    const json = fc.jsonValue({ maxDepth: 3 });
    fc.assert(
      fc.property(json, fc.string(), (value, leaf) => {
        expect(diffPaths(value, structuredClone(value), '')).toEqual([]);
        const a = { root: { x: value, y: leaf } };
        const b = { root: { x: value, y: `${leaf}!` } };
        expect(diffPaths(a, b, '')).toEqual(['root.y']);
      }),
    );
  });

  it('array length change is reported once for the array, equal-length by index', () => {
    expect(diffPaths({ a: [1, 2] }, { a: [1] }, '')).toEqual(['a']);
    expect(diffPaths({ a: [1, 2] }, { a: [1, 3] }, '')).toEqual(['a[1]']);
    expect(diffPaths({ a: 1 }, {}, '')).toEqual(['a']);
  });

  it('userPath drops the "Ms" the schema added to durations only', () => {
    expect(userPath('listen.keepAliveTimeoutMs')).toBe('listen.keepAliveTimeout');
    expect(userPath('keys.failureBudget.windowMs')).toBe('keys.failureBudget.window');
    expect(userPath('routes[0].name')).toBe('routes[0].name');
    expect(userPath('keys.cacheMaxEntries')).toBe('keys.cacheMaxEntries');
  });
});
