import { describe, expect, it } from 'vitest';
import { classifyUpstreamError, toUpstreamError } from '../../../src/forward/upstream-errors.js';

const withCode = (code: string, cause?: unknown) =>
  Object.assign(new Error(code, { cause }), { code });

describe('upstream error mapping', () => {
  it.each([
    ['ECONNREFUSED', 'connect_refused', 502, 'upstream_unavailable'],
    ['EHOSTUNREACH', 'connect_refused', 502, 'upstream_unavailable'],
    ['ECONNRESET', 'reset', 502, 'upstream_unavailable'],
    ['EPIPE', 'reset', 502, 'upstream_unavailable'],
    ['UND_ERR_SOCKET', 'reset', 502, 'upstream_unavailable'],
    ['ENOTFOUND', 'dns', 502, 'upstream_unavailable'],
    ['EAI_AGAIN', 'dns', 502, 'upstream_unavailable'],
    ['UND_ERR_CONNECT_TIMEOUT', 'connect_timeout', 504, 'upstream_timeout'],
    ['ETIMEDOUT', 'connect_timeout', 504, 'upstream_timeout'],
    ['UND_ERR_HEADERS_TIMEOUT', 'timeout', 504, 'upstream_timeout'],
    ['UND_ERR_BODY_TIMEOUT', 'timeout', 504, 'upstream_timeout'],
    ['SOMETHING_ELSE', 'other', 502, 'upstream_unavailable'],
  ])('%s → %s → %d %s', (code, kind, status, error) => {
    expect(classifyUpstreamError(withCode(code))).toBe(kind);
    const mapped = toUpstreamError(classifyUpstreamError(withCode(code)), null);
    expect([mapped.status, mapped.code]).toEqual([status, error]);
  });

  it('looks through undici wrapping to the socket error', () => {
    expect(
      classifyUpstreamError(withCode('UND_ERR_SOCKET_WRAPPER', withCode('ECONNREFUSED'))),
    ).toBe('connect_refused');
  });

  it('treats non-errors as other', () => {
    expect(classifyUpstreamError('boom')).toBe('other');
    expect(classifyUpstreamError(undefined)).toBe('other');
  });

  it('an error code that names an Object.prototype property is other, not an inherited value', () => {
    for (const code of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      expect(classifyUpstreamError(withCode(code))).toBe('other');
    }
  });
});
