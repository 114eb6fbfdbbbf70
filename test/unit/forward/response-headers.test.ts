import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { responseHeaders } from '../../../src/forward/response-headers.js';

describe('responseHeaders', () => {
  it('drops hop-by-hop and Connection-named headers, replaces x-request-id, keeps the rest in order', () => {
    const out = responseHeaders(
      [
        'Content-Type',
        'text/plain',
        'Connection',
        'keep-alive, X-Hop',
        'X-Hop',
        'h',
        'Transfer-Encoding',
        'chunked',
        'Keep-Alive',
        'timeout=5',
        'Set-Cookie',
        'a=1',
        'X-Request-Id',
        'upstream',
        'Set-Cookie',
        'b=2',
      ],
      'rid',
    );
    expect(out).toEqual([
      'Content-Type',
      'text/plain',
      'Set-Cookie',
      'a=1',
      'Set-Cookie',
      'b=2',
      'x-request-id',
      'rid',
    ]);
  });

  it('property: names that are JavaScript properties or numbers are ordinary names', () => {
    const names = [
      ...Object.getOwnPropertyNames(Object.prototype),
      ...Object.getOwnPropertyNames(Array.prototype),
      '0',
      '1',
      'length',
      'content-type',
      'set-cookie',
      'x-request-id',
      'connection',
      'transfer-encoding',
    ];
    const HOP =
      /^(connection|keep-alive|proxy-connection|proxy-authenticate|te|trailer|transfer-encoding|upgrade|x-request-id)$/i;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...names), fc.stringMatching(/^[a-z0-9=;]{0,8}$/)), {
          maxLength: 20,
        }),
        (list) => {
          const raw = list.flat();
          const named = new Set(
            list
              .filter(([n]) => n.toLowerCase() === 'connection')
              .flatMap(([, v]) => v.split(',').map((t) => t.trim().toLowerCase())),
          );
          const expected = list.filter(([n]) => !HOP.test(n) && !named.has(n.toLowerCase())).flat();
          const out = responseHeaders(raw, 'rid');
          expect(out).toEqual([...expected, 'x-request-id', 'rid']);
          expect(Object.getPrototypeOf(out)).toBe(Array.prototype);
        },
      ),
      { numRuns: 500 },
    );
  });
});
