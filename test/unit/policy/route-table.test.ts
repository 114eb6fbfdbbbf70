import { describe, expect, it } from 'vitest';
import type { HttpMethod } from '../../../src/config/schema.js';
import type { KeygateError } from '../../../src/errors.js';
import type { Principal } from '../../../src/keys/principal.js';
import { compilePattern, RouteTable } from '../../../src/policy/route-table.js';

describe('compilePattern', () => {
  it.each([
    ['/model/allocation', '/model/allocation', true],
    ['/model/allocation', '/model/allocation/summary', false],
    ['/model/allocation', '/model/allocationX', false],
    ['/model/reports/*', '/model/reports/a', true],
    ['/model/reports/*', '/model/reports', false],
    ['/model/reports/*', '/model/reports/a/b', false],
    ['/model/*/topline', '/model/assets/topline', true],
    ['/model/*/topline', '/model/assets/x/topline', false],
    ['/model/savings/**', '/model/savings', true],
    ['/model/savings/**', '/model/savings/a', true],
    ['/model/savings/**', '/model/savings/a/b/c', true],
    ['/model/savings/**', '/model/savingsX', false],
    ['/model/savings/**', '/model', false],
    ['/**', '/anything/at/all', true],
    ['/**', '/', true],
    ['/Model/a', '/model/a', false], // case-sensitive
  ])('%s matches %s: %s', (pattern, path, expected) => {
    expect(compilePattern(pattern)(path)).toBe(expected);
  });
});

const principal = (scopes: string[]): Principal => ({
  keyId: 'AAAAAAAAAAAA',
  account: 'a',
  role: 'r',
  scopes: new Set(scopes),
  expiresAt: 0,
  rateLimit: undefined,
  filters: undefined,
});

describe('RouteTable', () => {
  const table = new RouteTable([
    { name: 'alloc-read', methods: ['GET'], path: '/model/allocation/**', scopes: ['read'] },
    { name: 'alloc-write', methods: ['POST'], path: '/model/allocation/**', scopes: ['write'] },
    { name: 'first', methods: ['GET'], path: '/model/x', scopes: ['admin'] },
    { name: 'second', methods: ['GET'], path: '/model/x', scopes: ['read'] },
  ]);

  it('matches on method and path; first match wins', () => {
    expect(table.match('GET', '/model/allocation/summary')?.name).toBe('alloc-read');
    expect(table.match('POST', '/model/allocation')?.name).toBe('alloc-write');
    expect(table.match('GET', '/model/x')?.name).toBe('first');
    expect(table.match('DELETE', '/model/allocation')).toBeUndefined();
  });

  it('allows HEAD where GET is allowed', () => {
    expect(table.match('HEAD', '/model/allocation')?.name).toBe('alloc-read');
  });

  // The pipeline's two steps in its order: the rule (route_not_allowed), then the key's scopes.
  const authorize = (scopes: string[], method: string, path: string) => {
    const route = table.require(method, path);
    table.checkScopes(principal(scopes), route);
    return route;
  };

  it.each<[HttpMethod, string, string[], string]>([
    ['GET', '/model/allocation', ['read'], 'alloc-read'],
    ['HEAD', '/model/allocation/x', ['read'], 'alloc-read'],
    ['POST', '/model/allocation', ['read', 'write'], 'alloc-write'],
  ])('%s %s with %j → allowed by rule %s', (method, path, scopes, name) => {
    expect(authorize(scopes, method, path).name).toBe(name);
  });

  it.each<[HttpMethod, string, string[], string]>([
    ['POST', '/model/allocation', ['read'], 'insufficient_scope'],
    ['GET', '/model/x', ['read'], 'insufficient_scope'], // first match decides, even if a later rule would allow
    ['GET', '/model/assets', ['read', 'write', 'admin'], 'route_not_allowed'],
    ['PUT', '/model/allocation', ['read', 'write'], 'route_not_allowed'],
  ])('%s %s with %j → %s', (method, path, scopes, code) => {
    expect(() => authorize(scopes, method, path)).toThrow(
      expect.objectContaining<Partial<KeygateError>>({ code: code as KeygateError['code'] }),
    );
  });
});
