import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../../../src/config/load.js';
import { planReload } from '../../../src/config/reload-plan.js';
import type { Config } from '../../../src/config/schema.js';
import { RouteTable } from '../../../src/policy/route-table.js';

function config(routes: unknown[]): Readonly<Config> {
  return parseConfig(
    stringify({ upstream: { url: 'http://127.0.0.1:9004', stripPrefix: '/model' }, routes }),
    'test.yaml',
  );
}

function problems(routes: unknown[]) {
  try {
    config(routes);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

const alloc = {
  name: 'allocation',
  methods: ['GET'],
  path: '/model/allocation/**',
  scopes: ['read'],
};

describe('route rule `filter`', () => {
  it('takes allocation, assets or cloudCost, and the route table carries it', () => {
    const c = config([
      { ...alloc, filter: 'allocation' },
      {
        name: 'assets',
        methods: ['GET', 'HEAD'],
        path: '/model/assets',
        scopes: ['read'],
        filter: 'assets',
      },
      {
        name: 'cc',
        methods: ['GET'],
        path: '/model/cloudCost',
        scopes: ['read'],
        filter: 'cloudCost',
      },
      { name: 'reports', methods: ['GET'], path: '/model/reports', scopes: ['read'] },
    ]);
    const table = new RouteTable(c.routes);
    expect(table.match('GET', '/model/allocation/summary')?.filter).toBe('allocation');
    expect(table.match('HEAD', '/model/assets')?.filter).toBe('assets');
    expect(table.match('GET', '/model/cloudCost')?.filter).toBe('cloudCost');
    expect(table.match('GET', '/model/reports')?.filter).toBeUndefined();
  });

  it.each(['Allocation', 'cloudcost', 'customCost', '__proto__', 'constructor', '', 'allocation '])(
    'an unknown kind %j is a config error naming the route',
    (kind) => {
      const found = problems([{ ...alloc, filter: kind }]);
      expect(found.map((p) => p.path)).toContain('routes[0].filter');
    },
  );

  it('only on GET/HEAD routes: a body could carry a filter keygate never sees', () => {
    const found = problems([
      {
        name: 'w',
        methods: ['GET', 'POST'],
        path: '/model/allocation',
        scopes: ['read'],
        filter: 'allocation',
      },
    ]);
    expect(found).toEqual([
      { path: 'routes[0].filter', message: expect.stringMatching(/only GET and HEAD, not POST/) },
    ]);
  });

  it('reloads with the routes: adding or changing a kind is applied, no restart', () => {
    const plan = planReload(config([alloc]), config([{ ...alloc, filter: 'allocation' }]));
    expect(plan.applied).toEqual(['routes[0].filter']);
    expect(plan.needsRestart).toEqual([]);
    expect(plan.effective.routes[0]?.filter).toBe('allocation');
  });

  it('config/kubecost.yaml marks its allocation, assets and cloudCost routes, and no others', () => {
    const shipped = parseConfig(readFileSync('config/kubecost.yaml', 'utf8'), 'kubecost.yaml');
    const table = new RouteTable(shipped.routes);
    const kindOf = (path: string) => table.match('GET', path)?.filter;
    for (const p of [
      '/model/allocation',
      '/model/allocation/summary',
      '/model/allocation/summary/topline',
      '/model/allocation/view',
    ]) {
      expect(kindOf(p), p).toBe('allocation');
    }
    for (const p of ['/model/assets', '/model/assets/topline', '/model/assets/graph']) {
      expect(kindOf(p), p).toBe('assets');
    }
    for (const p of [
      '/model/cloudCost',
      '/model/cloudCost/view/graph',
      '/model/cloudCost/view/totals',
      '/model/cloudCost/view/table',
      '/model/cloudCost/view/trends',
    ]) {
      expect(kindOf(p), p).toBe('cloudCost');
    }
    // Not documented to apply a v2 filter: refused for filtered accounts rather than answered
    // unfiltered; still served (same scopes) for everyone else.
    for (const p of [
      '/model/allocation/trends',
      '/model/allocation/autocomplete',
      '/model/allocation/carbon',
      // Not an Aggregator route in Kubecost 2 (cost-model's on-demand query, reference §2.1);
      // older cost-model builds compute and answer it without reading `filter` at all.
      '/model/allocation/compute',
      '/model/allocation/compute/summary',
      '/model/assets/autocomplete',
      '/model/assets/carbon',
      '/model/cloudCost/autocomplete',
      '/model/customCost/total',
      '/model/savings/requestSizingV2',
      '/model/collections/query/total',
    ]) {
      expect(table.match('GET', p), p).toBeDefined();
      expect(kindOf(p), p).toBeUndefined();
    }
  });
});
