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

describe('KeygateError carries no stack', () => {
  it('captures no frames (a refusal is an answer, not a bug) and leaves the global limit as it was', () => {
    const before = Error.stackTraceLimit;
    const refusal = new KeygateError('invalid_key', 'nope');
    expect(refusal.stack?.split('\n')).toEqual(['KeygateError: nope']);
    expect(Error.stackTraceLimit).toBe(before);
    // Ordinary errors made afterwards still have their frames.
    expect(new Error('bug').stack?.split('\n').length).toBeGreaterThan(1);
    // A cause keeps its own stack for the log.
    const cause = new Error('socket hang up');
    const wrapped = new KeygateError('internal_error', 'internal error', { cause });
    expect((wrapped.cause as Error).stack).toContain('errors.test.ts');
  });
});
