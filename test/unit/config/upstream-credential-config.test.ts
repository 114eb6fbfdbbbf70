import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/load.js';

const URL_ONLY = 'upstream: { url: "http://127.0.0.1:9004" }\n';
const withCredential = (credential: string) =>
  `upstream: { url: "http://127.0.0.1:9004", credential: ${credential} }\n`;

function problems(yaml: string, env: NodeJS.ProcessEnv = {}) {
  try {
    parseConfig(yaml, 'test.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('upstream.credential', () => {
  it('is off unless configured', () => {
    expect(parseConfig(URL_ONLY, 't').upstream?.credential).toBeUndefined();
  });

  it('defaults the header to X-API-KEY', () => {
    const config = parseConfig(withCredential('{ file: /etc/kubecost/token }'), 't');
    expect(config.upstream?.credential).toEqual({
      header: 'X-API-KEY',
      file: '/etc/kubecost/token',
    });
  });

  it('KEYGATE_UPSTREAM_CREDENTIAL_FILE alone turns it on with the default header', () => {
    const config = parseConfig(URL_ONLY, 't', { KEYGATE_UPSTREAM_CREDENTIAL_FILE: '/run/s/key' });
    expect(config.upstream?.credential).toEqual({ header: 'X-API-KEY', file: '/run/s/key' });
  });

  it('the env variable overrides the file path and keeps the configured header', () => {
    const config = parseConfig(withCredential('{ header: Authorization, file: /a }'), 't', {
      KEYGATE_UPSTREAM_CREDENTIAL_FILE: '/b',
    });
    expect(config.upstream?.credential).toEqual({ header: 'Authorization', file: '/b' });
  });

  it('needs a file; unknown keys (a value inline) are refused', () => {
    expect(problems(withCredential('{ header: X-API-KEY }')).map((p) => p.path)).toEqual([
      'upstream.credential.file',
    ]);
    expect(problems(withCredential('{ file: /a, value: secret }')).map((p) => p.path)).toContain(
      'upstream.credential.value',
    );
  });

  it.each(['X-API-KEY', 'x-api-key', 'Authorization', 'X-Kubecost-Token'])(
    'header %s is accepted',
    (header) => {
      const config = parseConfig(withCredential(`{ header: ${header}, file: /a }`), 't');
      expect(config.upstream?.credential?.header).toBe(header);
    },
  );

  it.each([
    'Host',
    'Content-Length',
    'Transfer-Encoding',
    'Connection',
    'Cookie',
    'X-Forwarded-For',
    'X-Forwarded-User',
    'Forwarded',
    'X-Real-IP',
    'X-Request-Id',
    'X-Original-URI',
    'Proxy-Authorization',
    'X-Keygate-Account',
    'X-Keygate-Anything',
    'constructor',
    'hasOwnProperty',
    '__proto__',
    'X_API_KEY',
    'X-API-KEY:',
    'X API KEY',
    '',
  ])('header %j is refused', (header) => {
    const found = problems(withCredential(`{ header: ${JSON.stringify(header)}, file: /a }`));
    expect(found.map((p) => p.path)).toContain('upstream.credential.header');
  });

  it('a header that is also an identity header is refused', () => {
    const found = problems(
      `${withCredential('{ header: x-tenant, file: /a }')}identityHeaders: { account: X-Tenant }\n`,
    );
    expect(found.map((p) => p.path)).toEqual(['upstream.credential.header']);
  });

  it('property: an accepted header is never a framing, forwarding, identity or object-property name', () => {
    const FORBIDDEN =
      /^(host|content-.*|transfer-encoding|connection|keep-alive|te|trailer|upgrade|expect|cookie|set-cookie|forwarded|via|x-real-ip|x-request-id|proxy-.*|x-forwarded-.*|x-original-.*|x-envoy-.*|sec-.*|x-keygate-.*|constructor|tostring|valueof|hasownproperty|__proto__)$/;
    const name = fc.oneof(
      fc.constantFrom('Host', 'X-Forwarded-Host', 'X-Keygate-Role', 'Constructor', 'ToString'),
      fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/),
    );
    fc.assert(
      fc.property(name, (header) => {
        let accepted = true;
        try {
          parseConfig(withCredential(`{ header: ${JSON.stringify(header)}, file: /a }`), 't');
        } catch {
          accepted = false;
        }
        if (accepted) expect(FORBIDDEN.test(header.toLowerCase())).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});
