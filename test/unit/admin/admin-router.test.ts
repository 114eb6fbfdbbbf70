import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ADMIN_ROUTES, AdminMethodError, routeAdmin } from '../../../src/admin/admin-api.js';
import { KeygateError } from '../../../src/errors.js';
import { isValidKeyId } from '../../../src/keys/key-format.js';
import { ACCOUNT_NAME } from '../../../src/keys/key-service.js';

const ID = 'AbCdEf123456';

/** What a router outcome looks like, as a value: never an exception other than these two. */
function outcome(method: string, path: string) {
  try {
    const { route, params } = routeAdmin(method, path);
    return { kind: 'hit' as const, route, params };
  } catch (err) {
    if (err instanceof AdminMethodError) return { kind: 'status' as const, status: 405 };
    if (err instanceof KeygateError) return { kind: 'status' as const, status: err.status };
    return { kind: 'thrown' as const, err };
  }
}

// Segments an attacker would try, next to the real ones: malformed and overlong escapes,
// Object.prototype names, dot segments, case and separator variants.
const HOSTILE = [
  '%C0',
  '%C0%AE',
  '%E0%A4%A',
  '%E0%A4',
  '%FF',
  '%',
  '%%',
  '%G1',
  '%2e%2e',
  '%2F',
  '..',
  '.',
  '',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '0',
  '-1',
  'CI',
  'ci_x',
  'ci%2Dx',
  'Service-Accounts',
  'service-accounts%00',
  'é',
  'a'.repeat(64),
  `${ID}0`,
  ID.slice(1),
  `${ID.slice(0, 11)}_`,
];
const REAL = ['service-accounts', 'api-keys', 'rotate', 'openapi.json', 'ci', 'x-1', ID];
const segment = fc.oneof(
  fc.constantFrom(...HOSTILE),
  fc.constantFrom(...REAL),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
);
// Half the paths are real templates with hostile parameters, where the bugs live.
const target = fc.oneof(
  fc
    .tuple(fc.constantFrom(...ADMIN_ROUTES.map((r) => r.path)), segment, segment)
    .map(([path, name, id]) => path.replace('{name}', name).replace('{id}', id)),
  fc.array(segment, { maxLength: 7 }).map((s) => `/${s.join('/')}`),
);
const method = fc.oneof(
  fc.constantFrom('GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'PUT', 'OPTIONS', 'TRACE'),
  fc.constantFrom('__proto__', 'constructor', 'get', 'Get'),
  fc.string({ maxLength: 8 }),
);

describe('admin router', () => {
  it.each([
    ['/service-accounts/%C0', 404],
    ['/service-accounts/%E0%A4%A', 404],
    ['/service-accounts/%C0%AE/api-keys', 404],
    ['/service-accounts/ci/api-keys/%FF', 404],
    ['/service-accounts/ci/api-keys/%E0%A4%A/rotate', 404],
    ['/service-accounts/__proto__', 404],
    ['/service-accounts/CI', 404],
    ['/service-accounts/ci/api-keys/__proto__', 404],
    ['/service-accounts/ci/api-keys/constructor/rotate', 404],
    ['/__proto__', 404],
    ['/constructor', 404],
  ])('GET/DELETE %s → %i, never an exception', (path, status) => {
    for (const m of ['GET', 'DELETE']) {
      const o = outcome(m, path);
      expect(o.kind === 'status' && o.status, `${m} ${path}`).toBe(status);
    }
  });

  it('a wrong method on a real path is 405 with the allowed methods', () => {
    try {
      routeAdmin('PUT', '/service-accounts/ci');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(AdminMethodError);
      expect((err as AdminMethodError).allow).toEqual(['GET', 'PATCH', 'DELETE']);
      expect((err as AdminMethodError).error.code).toBe('method_not_allowed');
    }
  });

  it('valid parameters arrive as they are, on a null-prototype object', () => {
    const o = outcome('POST', `/service-accounts/ci-1/api-keys/${ID}/rotate`);
    expect(o.kind).toBe('hit');
    if (o.kind !== 'hit') return;
    expect(Object.getPrototypeOf(o.params)).toBeNull();
    expect({ ...o.params }).toEqual({ name: 'ci-1', id: ID });
    expect(Object.isFrozen(o.params)).toBe(true);
  });

  it('account names that are Object.prototype names are ordinary names', () => {
    const o = outcome('GET', '/service-accounts/constructor');
    expect(o.kind === 'hit' && o.params.name).toBe('constructor');
  });

  it('property: any path and method → a route whose params match their patterns, or 404/405', () => {
    fc.assert(
      fc.property(method, target, (m, path) => {
        const o = outcome(m, path);
        if (o.kind === 'thrown') throw o.err;
        if (o.kind === 'status') {
          expect([404, 405]).toContain(o.status);
          return;
        }
        expect(Object.getPrototypeOf(o.params)).toBeNull();
        for (const [key, value] of Object.entries(o.params)) {
          if (key === 'name') expect(value).toMatch(ACCOUNT_NAME);
          else if (key === 'id') expect(isValidKeyId(value)).toBe(true);
          else expect.unreachable(`unexpected parameter ${key}`);
        }
        expect(ADMIN_ROUTES).toContain(o.route);
      }),
      { numRuns: 3000 },
    );
  });

  it('property: every route template is reachable with valid parameters', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ADMIN_ROUTES),
        fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,62}$/),
        fc.stringMatching(/^[0-9A-Za-z]{12}$/),
        (route, name, id) => {
          const path = route.path.replace('{name}', name).replace('{id}', id);
          const o = outcome(route.method, path);
          expect(o.kind === 'hit' && o.route).toBe(route);
        },
      ),
    );
  });
});
