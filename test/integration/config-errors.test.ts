import { describe, expect, it } from 'vitest';
import { runCli, writeTempConfig } from '../helpers/cli.js';

const UPSTREAM = 'upstream: { url: "http://127.0.0.1:9004" }\n';

/** Each broken config must exit 2 and name the offending path in its message. */
const BROKEN: Array<[name: string, yaml: string, path: string, env?: Record<string, string>]> = [
  ['unknown key (typo)', `${UPSTREAM}listen: { port: 8080, prot: 1 }\n`, 'listen.prot'],
  ['wrong type', `${UPSTREAM}listen: { port: "eighty" }\n`, 'listen.port'],
  [
    'unknown HTTP method in a route',
    `${UPSTREAM}routes:\n  - { name: a, methods: [GET, FETCH], path: /model/a, scopes: [read] }\n`,
    'routes[0].methods[1]',
  ],
  ['bad duration', `${UPSTREAM}keys: { cacheTtl: "30 seconds" }\n`, 'keys.cacheTtl'],
  ['unknown store type', `${UPSTREAM}store: { type: postgres }\n`, 'store.type'],
  ['missing upstream', 'listen: { port: 8080 }\n', 'upstream'],
  ['unknown mode', `${UPSTREAM}mode: forward\n`, 'mode'],
  ['bad mode from KEYGATE_MODE', UPSTREAM, 'mode', { KEYGATE_MODE: 'Authz' }],
  ['mode both without an upstream', 'mode: both\n', 'upstream'],
  ['bad authz.cacheTtl', 'mode: authz\nauthz: { cacheTtl: "-1s" }\n', 'authz.cacheTtl'],
  [
    'route scope no role grants',
    `${UPSTREAM}routes:\n  - { name: a, methods: [GET], path: /model/a, scopes: [raed] }\n`,
    'routes[0].scopes[0]',
  ],
  [
    '"**" not last in a pattern',
    `${UPSTREAM}routes:\n  - { name: a, methods: [GET], path: /model/**/x, scopes: [read] }\n`,
    'routes[0].path',
  ],
  ['bad env override', UPSTREAM, 'listen.port', { KEYGATE_PORT: 'http' }],
  [
    'route under the reserved /_keygate prefix',
    `${UPSTREAM}routes:\n  - { name: a, methods: [GET], path: /_keygate/v1/service-accounts, scopes: [read] }\n`,
    'routes[0].path',
  ],
  [
    'route with a dot segment',
    `${UPSTREAM}routes:\n  - { name: a, methods: [GET], path: /model/../etl, scopes: [read] }\n`,
    'routes[0].path',
  ],
  [
    'identity header named after a forwarding header',
    `${UPSTREAM}identityHeaders: { account: X-Forwarded-User }\n`,
    'identityHeaders.account',
  ],
  [
    'identity header named after the credential header',
    `${UPSTREAM}identityHeaders: { role: x-api-key }\n`,
    'identityHeaders.role',
  ],
  [
    'two identity headers that are one header',
    `${UPSTREAM}identityHeaders: { account: X-User, keyId: x-user }\n`,
    'identityHeaders.keyId',
  ],
  ['invalid YAML', `${UPSTREAM}listen: { port: 8080\n`, 'YAML'],
];

describe('broken configs exit 2 and name the bad path', () => {
  for (const [name, yaml, path, env] of BROKEN) {
    it(`config check: ${name} → ${path}`, async () => {
      const file = writeTempConfig(yaml);
      const result = await runCli(['config', 'check', file], env);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(path);
      expect(result.stderr).toContain(file);
    });
  }

  it('a password in upstream.url is refused by config check and never printed', async () => {
    const file = writeTempConfig('upstream: { url: "http://svc:hunter2@127.0.0.1:9004" }\n');
    const result = await runCli(['config', 'check', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('upstream.url');
    expect(result.stderr).toContain('credentials');
    expect(result.stdout + result.stderr).not.toContain('hunter2');
  });

  it('a password in KEYGATE_UPSTREAM_URL is refused by serve and never printed', async () => {
    const file = writeTempConfig(UPSTREAM);
    const result = await runCli(['serve', '--config', file], {
      KEYGATE_UPSTREAM_URL: 'http://svc:hunter2@127.0.0.1:9004',
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('KEYGATE_UPSTREAM_URL');
    expect(result.stdout + result.stderr).not.toContain('hunter2');
  });

  it('serve refuses a broken config with exit 2 before opening anything', async () => {
    const file = writeTempConfig(
      `${UPSTREAM}store: { type: file, file: { path: /tmp/x.json, mode: 1 } }\n`,
    );
    const result = await runCli(['serve', '--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('store.file.mode');
  });

  it('KEYGATE_CONFIG selects the file; a missing file is exit 2', async () => {
    const result = await runCli(['config', 'check'], {
      KEYGATE_CONFIG: '/nonexistent/keygate.yaml',
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('/nonexistent/keygate.yaml');
    expect(result.stderr).toContain('file not found');
  });

  it('the shipped configs pass config check', async () => {
    for (const file of ['config/keygate.yaml', 'config/kubecost.yaml']) {
      const result = await runCli(['config', 'check', file]);
      expect(result.code, result.stderr).toBe(0);
    }
  });

  it('unknown command is bad usage: exit 2 with the usage text', async () => {
    const result = await runCli(['frobnicate']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('usage: keygate');
  });
});
