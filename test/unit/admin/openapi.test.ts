import { describe, expect, it } from 'vitest';
import { ADMIN_ROUTES } from '../../../src/admin/admin-api.js';
import openapi from '../../../src/admin/openapi.json' with { type: 'json' };

type Operation = { responses: Record<string, unknown>; requestBody?: unknown };
const paths = openapi.paths as Record<string, Record<string, Operation>>;

describe('the OpenAPI document matches the admin handler', () => {
  it('is OpenAPI 3.1', () => {
    expect(openapi.openapi).toBe('3.1.0');
  });

  it('documents every route the handler serves, and no other', () => {
    const served = ADMIN_ROUTES.map((r) => `${r.method} ${r.path}`).sort();
    const documented = Object.entries(paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    expect(documented).toEqual(served);
  });

  it('every operation documents its success code, 401, 403 and 503', () => {
    const success: Record<string, string> = {
      GET: '200',
      PATCH: '200',
      DELETE: '204',
      POST: '201',
    };
    for (const route of ADMIN_ROUTES) {
      const op = paths[route.path]?.[route.method.toLowerCase()] as Operation;
      const expected = route.path === '/openapi.json' ? '200' : (success[route.method] as string);
      expect(Object.keys(op.responses), `${route.method} ${route.path}`).toEqual(
        expect.arrayContaining([expected, '401', '403', '503']),
      );
    }
  });

  it('every operation with a body documents 400, 413 and 415', () => {
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (op.requestBody === undefined) continue;
        expect(Object.keys(op.responses), `${method} ${path}`).toEqual(
          expect.arrayContaining(['400', '413', '415']),
        );
      }
    }
  });

  it('every $ref resolves', () => {
    const refs = [...JSON.stringify(openapi).matchAll(/"\$ref":"#\/([^"]+)"/g)].map(
      (m) => m[1] as string,
    );
    for (const ref of refs) {
      const path = ref.split('/');
      let node: unknown = openapi;
      for (const part of path) node = (node as Record<string, unknown>)[part];
      expect(node, ref).toBeDefined();
    }
    expect(refs.length).toBeGreaterThan(10);
  });
});
