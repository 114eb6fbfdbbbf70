import { describe, expect, it } from 'vitest';
import { ERROR_STATUS, errorHeaders, KeygateError, toErrorBody } from '../../src/errors.js';

describe('error registry', () => {
  it('maps every code to an HTTP error status', () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      expect(status, code).toBeGreaterThanOrEqual(400);
      expect(status, code).toBeLessThan(600);
      expect(code).toMatch(/^[a-z_]+$/);
    }
  });

  it('builds the Kubecost-style envelope with the stable code', () => {
    const err = new KeygateError('invalid_key', 'API key is not valid');
    expect(toErrorBody(err, 'req-1')).toEqual({
      code: 401,
      error: 'invalid_key',
      message: 'API key is not valid',
      request_id: 'req-1',
    });
  });

  it.each([
    ['missing_credentials', { 'www-authenticate': 'Bearer realm="keygate"' }],
    ['invalid_key', { 'www-authenticate': 'Bearer realm="keygate", error="invalid_token"' }],
    ['expired_key', { 'www-authenticate': 'Bearer realm="keygate", error="invalid_token"' }],
    [
      'insufficient_scope',
      { 'www-authenticate': 'Bearer realm="keygate", error="insufficient_scope"' },
    ],
    ['store_unavailable', { 'retry-after': '2' }],
    ['verify_overloaded', { 'retry-after': '1' }],
    ['route_not_allowed', {}],
    ['upstream_timeout', {}],
  ] as const)('%s carries %j', (code, headers) => {
    expect(errorHeaders(new KeygateError(code, 'x'))).toEqual(headers);
  });
});
