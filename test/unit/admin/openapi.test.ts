import { describe, expect, it } from 'vitest';
import { ADMIN_ROUTES } from '../../../src/admin/admin-api.js';
import openapi from '../../../src/admin/openapi.json' with { type: 'json' };
import { ERROR_STATUS } from '../../../src/errors.js';
import { type AdminAnswer, checkAdminAnswer } from '../../helpers/openapi-answers.js';

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

  it('every operation documents its success code and the errors any admin call can meet', () => {
    const success: Record<string, string> = {
      GET: '200',
      PATCH: '200',
      DELETE: '204',
      POST: '201',
    };
    for (const route of ADMIN_ROUTES) {
      const op = paths[route.path]?.[route.method.toLowerCase()] as Operation;
      // apply answers 200 on POST: it reports changes and may create nothing at all.
      const expected =
        route.path === '/openapi.json' || route.path === '/apply'
          ? '200'
          : (success[route.method] as string);
      expect(Object.keys(op.responses), `${route.method} ${route.path}`).toEqual(
        expect.arrayContaining([expected, '400', '401', '403', '405', '429', '431', '500', '503']),
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

type ErrorResponse = {
  headers?: Record<string, unknown>;
  content: {
    'application/json': {
      schema: { properties: { code: { const: number }; error: { enum: string[] } } };
    };
  };
};

describe('the OpenAPI error responses match the error table', () => {
  it("Error.error lists exactly src/errors.ts's codes", () => {
    expect([...openapi.components.schemas.Error.properties.error.enum].sort()).toEqual(
      Object.keys(ERROR_STATUS).sort(),
    );
  });

  it("each error response's codes answer with that response's status", () => {
    const responses = openapi.components.responses as unknown as Record<string, ErrorResponse>;
    for (const [name, response] of Object.entries(responses)) {
      const { code, error } = response.content['application/json'].schema.properties;
      for (const e of error.enum) {
        expect(ERROR_STATUS[e as keyof typeof ERROR_STATUS], `${name}: ${e}`).toBe(code.const);
      }
    }
    // The codes a client can meet on the admin API, each documented somewhere.
    const documented = Object.values(responses).flatMap(
      (r) => r.content['application/json'].schema.properties.error.enum,
    );
    expect(documented).toEqual(
      expect.arrayContaining([
        'insufficient_scope',
        'credential_in_url',
        'credential_in_header',
        'ambiguous_credentials',
        'method_not_allowed',
        'payload_too_large',
        'unsupported_media_type',
        'auth_throttled',
        'store_unavailable',
        'verify_overloaded',
      ]),
    );
  });

  it('405 requires Allow; 429 and 503 describe Retry-After', () => {
    const responses = openapi.components.responses as unknown as Record<string, ErrorResponse>;
    expect(Object.keys(responses.MethodNotAllowed?.headers ?? {})).toEqual(['Allow']);
    expect(openapi.components.headers.Allow.required).toBe(true);
    expect(Object.keys(responses.TooManyRequests?.headers ?? {})).toEqual(['Retry-After']);
    expect(Object.keys(responses.Unavailable?.headers ?? {})).toEqual(['Retry-After']);
  });

  it('documents the three ways to present the key: X-API-KEY, Bearer, Basic (key as user name)', () => {
    expect(openapi.components.securitySchemes).toMatchObject({
      apiKey: { type: 'apiKey', in: 'header', name: 'X-API-KEY' },
      bearer: { type: 'http', scheme: 'bearer' },
      basic: { type: 'http', scheme: 'basic' },
    });
    expect(openapi.security).toEqual([{ apiKey: [] }, { bearer: [] }, { basic: [] }]);
  });

  it('AccountWithKeys is Account plus keys, closed like Account', () => {
    const { Account, AccountWithKeys } = openapi.components.schemas;
    expect(Object.keys(AccountWithKeys.properties).sort()).toEqual(
      [...Object.keys(Account.properties), 'keys'].sort(),
    );
    expect(AccountWithKeys.required.sort()).toEqual([...Account.required, 'keys'].sort());
    expect(AccountWithKeys.additionalProperties).toBe(false);
  });
});

const account = {
  name: 'ci',
  role: 'reader',
  description: '',
  disabled: false,
  created_at: 1,
  updated_at: 1,
  rate_limit: null,
  filters: {},
};
const keyMeta = {
  id: 'AbCdEfGhIjKl',
  description: 'd',
  scopes: null,
  created_at: 1,
  expires_at: 0,
  last_used_at: 0,
  revoked_at: 0,
  replaced_by: '',
  status: 'active',
  request_count: 7,
};
const json = { 'content-type': 'application/json' };
const answer = (over: Partial<AdminAnswer>): AdminAnswer => ({
  method: 'GET',
  target: '/_keygate/v1/service-accounts/ci',
  status: 200,
  headers: json,
  text: JSON.stringify({ ...account, keys: [keyMeta] }),
  ...over,
});
const error = (status: number, code: string) =>
  JSON.stringify({ code: status, error: code, message: 'm', request_id: 'r' });

// The checker run over every admin answer in the integration suite (openapi-check.ts): it must
// accept what keygate answers and refuse anything else, or that suite-wide check means nothing.
describe('the admin answer checker', () => {
  it('accepts answers the document describes', () => {
    const good: AdminAnswer[] = [
      answer({}),
      answer({ method: 'HEAD', text: '' }),
      answer({
        target: '/_keygate/v1/service-accounts',
        text: JSON.stringify({ items: [account] }),
      }),
      answer({ method: 'DELETE', status: 204, headers: {}, text: '' }),
      answer({ status: 404, text: error(404, 'not_found') }),
      answer({
        method: 'PUT',
        status: 405,
        headers: { ...json, allow: 'GET, PATCH, DELETE' },
        text: error(405, 'method_not_allowed'),
      }),
      answer({ status: 400, text: error(400, 'credential_in_url') }),
      answer({ status: 403, text: error(403, 'insufficient_scope') }),
      answer({ target: '/_keygate/v1/nope', status: 404, text: error(404, 'not_found') }),
      answer({ target: '/model/x', status: 418, text: 'not an admin answer' }),
    ];
    for (const a of good) expect(checkAdminAnswer(a), `${a.method} ${a.status}`).toEqual([]);
  });

  const bad: Array<[string, Partial<AdminAnswer>]> = [
    ['an extra member', { text: JSON.stringify({ ...account, keys: [], secret: 'x' }) }],
    ['a missing member', { text: JSON.stringify({ ...account }) }],
    ['a wrong type', { text: JSON.stringify({ ...account, disabled: 'no', keys: [] }) }],
    [
      'a key with an unknown status',
      { text: JSON.stringify({ ...account, keys: [{ ...keyMeta, status: 'gone' }] }) },
    ],
    [
      'a key without its request count',
      {
        text: JSON.stringify({
          ...account,
          keys: [{ ...keyMeta, request_count: undefined }],
        }),
      },
    ],
    [
      'a negative request count',
      { text: JSON.stringify({ ...account, keys: [{ ...keyMeta, request_count: -1 }] }) },
    ],
    ['an undocumented status', { status: 418, text: error(400, 'bad_request') }],
    ['a success on a method the path does not serve', { method: 'PUT', status: 200 }],
    ['405 without Allow', { method: 'PUT', status: 405, text: error(405, 'method_not_allowed') }],
    [
      '405 with a wrong Allow',
      {
        method: 'PUT',
        status: 405,
        headers: { ...json, allow: 'GET' },
        text: error(405, 'method_not_allowed'),
      },
    ],
    ['an error code of another status', { status: 404, text: error(404, 'conflict') }],
    ['code not the status', { status: 404, text: error(400, 'not_found') }],
    [
      'an error outside the envelope',
      { status: 404, text: JSON.stringify({ error: 'not_found' }) },
    ],
    ['an error that is not JSON', { status: 404, text: 'Not Found' }],
    ['a JSON body without content-type', { headers: {} }],
    ['a body on 204', { method: 'DELETE', status: 204, text: '{}' }],
    ['a success where no endpoint is', { target: '/_keygate/v1/nope', status: 200 }],
    ['a body on HEAD', { method: 'HEAD' }],
  ];
  for (const [name, over] of bad) {
    it(`refuses ${name}`, () => {
      expect(checkAdminAnswer(answer(over))).not.toEqual([]);
    });
  }
});
