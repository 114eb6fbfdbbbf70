import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RequestHeaderBuilder, trustedProxyList } from '../../../src/forward/request-headers.js';
import type { UpstreamCredential } from '../../../src/forward/upstream-credential.js';
import type { Principal } from '../../../src/keys/principal.js';
import { registerSecret } from '../../helpers/captured-logs.js';

const IDENTITY = {
  account: 'X-Keygate-Account',
  keyId: 'X-Keygate-Key-Id',
  role: 'X-Keygate-Role',
};
const principal: Principal = {
  keyId: 'KEYID0000001',
  account: 'ci',
  role: 'reader',
  scopes: new Set(['read']),
  expiresAt: 0,
  rateLimit: undefined,
  filters: undefined,
};
const SECRET = 'keygate-upstream-credential-value-0001';
registerSecret(SECRET, 'upstream credential');

/** A credential that never changes; the file-backed one has its own tests. */
function fixedCredential(header: string, value: string): UpstreamCredential {
  return { header: header.toLowerCase(), value: () => value, close: () => {} };
}

function build(header: string, raw: string[]): Array<[string, string]> {
  const builder = new RequestHeaderBuilder(
    IDENTITY,
    trustedProxyList([]),
    false,
    [],
    fixedCredential(header, SECRET),
  );
  const flat = builder.build({
    rawHeaders: raw,
    remoteAddress: '10.0.0.1',
    encrypted: false,
    requestId: 'rid',
    principal,
  });
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
}

const canonical = (n: string) => n.toLowerCase().replaceAll('_', '-');

describe('RequestHeaderBuilder with an upstream credential', () => {
  it('sends keygate’s credential, once, last', () => {
    const out = build('X-API-KEY', ['Accept', 'application/json']);
    expect(out.at(-1)).toEqual(['x-api-key', SECRET]);
    expect(out.filter(([n]) => n === 'x-api-key')).toHaveLength(1);
  });

  it.each(['X-API-KEY', 'Authorization', 'X-Kubecost-Token'])(
    'a client’s copies of %s never pass: any case, "_" spelling, duplicates, Connection-named',
    (header) => {
      const lower = header.toLowerCase();
      const raw = [
        header,
        'client-1',
        lower,
        'client-2',
        header.toUpperCase(),
        'client-3',
        header.replaceAll('-', '_'),
        'client-4',
        lower.replaceAll('-', '_'),
        'client-5',
        'X-Other',
        'kept',
      ];
      // Without and with a Connection header naming it: each rule must hold on its own.
      for (const extra of [[], ['Connection', `keep-alive, ${header}`]]) {
        const out = build(header, [...raw, ...extra]);
        const copies = out.filter(([n]) => canonical(n) === lower);
        expect(copies).toEqual([[lower, SECRET]]);
        expect(JSON.stringify(out)).not.toContain('client-');
        expect(out).toContainEqual(['x-other', 'kept']);
      }
    },
  );

  it('property: whatever the client sends, exactly one header of that name upstream, with keygate’s value', () => {
    const header = fc.constantFrom('X-API-KEY', 'Authorization', 'X-Kubecost-Token');
    const variant = (name: string) =>
      fc
        .tuple(
          fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }),
          fc.boolean(),
        )
        .map(([upper, underscore]) => {
          const cased = [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('');
          return underscore ? cased.replaceAll('-', '_') : cased;
        });
    const pool = [
      'x-api-key',
      'authorization',
      'x-kubecost-token',
      'connection',
      '__proto__',
      'constructor',
      '0',
      'accept',
    ];
    const name = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...pool).chain(variant) },
      { weight: 1, arbitrary: fc.stringMatching(/^[a-z0-9_-]{1,10}$/) },
    );
    const value = fc.oneof(
      fc.constantFrom('x-api-key', 'authorization', 'x-kubecost-token', 'Bearer client'),
      fc.stringMatching(/^[!-~]{1,12}$/),
    );
    fc.assert(
      fc.property(header, fc.array(fc.tuple(name, value), { maxLength: 20 }), (h, list) => {
        const out = build(h, list.flat());
        const lower = h.toLowerCase();
        expect(out.filter(([n]) => canonical(n) === lower)).toEqual([[lower, SECRET]]);
        // Neither credential header of the client passes, whichever keygate itself sends.
        for (const [n, v] of out) {
          if (canonical(n) === 'x-api-key' || canonical(n) === 'authorization') {
            expect([n, v]).toEqual([lower, SECRET]);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('without a credential nothing of the kind is added', () => {
    const builder = new RequestHeaderBuilder(IDENTITY, trustedProxyList([]), false, []);
    const flat = builder.build({
      rawHeaders: ['X-API-KEY', 'client'],
      remoteAddress: '10.0.0.1',
      encrypted: false,
      requestId: 'rid',
      principal,
    });
    expect(flat.map((n) => n.toLowerCase())).not.toContain('x-api-key');
  });
});
