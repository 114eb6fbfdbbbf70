import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDurationMs } from '../../../src/config/duration.js';
import { ConfigError, parseConfig } from '../../../src/config/load.js';
import { redactUrl } from '../../../src/shared/redact-url.js';

const MIN = 'upstream: { url: "http://127.0.0.1:9004" }\n';

function problems(yaml: string, env: NodeJS.ProcessEnv = {}) {
  try {
    parseConfig(yaml, 'test.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('parseDurationMs', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['24h', 86_400_000],
    ['90d', 7_776_000_000],
    [30, 30_000],
    ['30', 30_000],
    [0.5, 500],
    ['1.5s', 1500],
  ] as const)('%j → %d ms', (input, ms) => {
    expect(parseDurationMs(input)).toBe(ms);
  });
  // The README's Configuration section lists what is refused: keep the two in step.
  it.each(['', '30 seconds', '30 s', '1h30m', '5w', '-1s', 'abc', null, {}, -5])(
    '%j is not a duration',
    (input) => {
      expect(parseDurationMs(input)).toBeUndefined();
    },
  );
});

describe('parseConfig', () => {
  it('fills the documented defaults and freezes the result', () => {
    const config = parseConfig(MIN, 't');
    expect(config.listen).toEqual({
      host: '0.0.0.0',
      port: 8080,
      maxHeaderBytes: 32 * 1024,
      headersTimeoutMs: 60_000,
      requestTimeoutMs: 300_000,
      keepAliveTimeoutMs: 65_000,
      drainTimeoutMs: 25_000,
      bodyIdleTimeoutMs: 15_000,
      maxInflightPerAccount: 64,
    });
    expect(config.ops).toEqual({
      host: '127.0.0.1',
      port: 9464,
      keyExpiryRefreshMs: 300_000,
      keyInUseWithinMs: 7 * 86_400_000,
    });
    expect(config.upstream?.queue).toBe(256);
    expect(config.upstream?.dropHeaders).toEqual([]);
    expect(config.keys.failureBudget).toEqual({ perKeyId: 10, perAddress: 30, windowMs: 60_000 });
    expect(config.upstream?.timeoutMs).toBe(300_000);
    expect(config.store.type).toBe('file');
    expect(config.keys.argon2).toEqual({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    expect(config.keys.cacheTtlMs).toBe(30_000);
    expect(config.roles).toEqual({
      admin: ['read', 'write', 'admin'],
      member: ['read', 'write'],
      reader: ['read'],
    });
    expect(config.identityHeaders.account).toBe('X-Keygate-Account');
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.keys.argon2)).toBe(true);
    expect(() => {
      (config.listen as { port: number }).port = 1;
    }).toThrow();
  });

  it('applies KEYGATE_* env overrides over the file', () => {
    const config = parseConfig(`${MIN}store: { type: file }\n`, 't', {
      KEYGATE_PORT: '9000',
      KEYGATE_OPS_PORT: '9001',
      KEYGATE_UPSTREAM_URL: 'http://agg:9004',
      KEYGATE_STORE: 'redis',
      KEYGATE_REDIS_URL: 'redis://r:6379/1',
      KEYGATE_FILE_PATH: '/data/k.json',
      KEYGATE_LOG_LEVEL: 'debug',
    });
    expect(config.listen.port).toBe(9000);
    expect(config.ops.port).toBe(9001);
    expect(config.upstream?.url).toBe('http://agg:9004');
    expect(config.store.type).toBe('redis');
    expect(config.store.redis.url).toBe('redis://r:6379/1');
    expect(config.store.file.path).toBe('/data/k.json');
    expect(config.log.level).toBe('debug');
  });

  it.each([
    ['unknown top-level key', `${MIN}lisen: {}\n`, 'lisen'],
    ['unknown nested key', `${MIN}keys: { cacheTTL: 5s }\n`, 'keys.cacheTTL'],
    ['port out of range', `${MIN}listen: { port: 70000 }\n`, 'listen.port'],
    ['bad upstream scheme', 'upstream: { url: "ftp://x" }\n', 'upstream.url'],
    ['bad stripPrefix', `${MIN.replace('}', ', stripPrefix: model }')}`, 'upstream.stripPrefix'],
    ['bad key prefix', `${MIN}keys: { prefix: "k_g" }\n`, 'keys.prefix'],
    ['bad trusted proxy', `${MIN}trustedProxies: ["10.0.0.0/33"]\n`, 'trustedProxies[0]'],
    [
      'two redis modes',
      `${MIN}store: { redis: { url: "redis://a", cluster: { nodes: ["redis://b"] } } }\n`,
      'store.redis',
    ],
    [
      'duplicate route name',
      `${MIN}routes:\n  - { name: a, methods: [GET], path: /a, scopes: [read] }\n  - { name: a, methods: [GET], path: /b, scopes: [read] }\n`,
      'routes[1].name',
    ],
    [
      'empty methods',
      `${MIN}routes:\n  - { name: a, methods: [], path: /a, scopes: [read] }\n`,
      'routes[0].methods',
    ],
    [
      'trailing slash pattern',
      `${MIN}routes:\n  - { name: a, methods: [GET], path: /a/, scopes: [read] }\n`,
      'routes[0].path',
    ],
    ['duplicate YAML key', `${MIN}log: { level: info }\nlog: { level: debug }\n`, ''],
    ['not a mapping', '- a\n- b\n', ''],
  ])('%s is reported at %j', (_name, yaml, path) => {
    const found = problems(yaml);
    expect(found.map((p) => p.path)).toContain(path);
    for (const p of found) expect(p.message.length).toBeGreaterThan(3);
  });

  it('names the env variable when an override is the problem', () => {
    const found = problems(MIN, { KEYGATE_LOG_LEVEL: 'loud' });
    expect(found[0]).toMatchObject({ path: 'log.level' });
    expect(found[0]?.message).toContain('KEYGATE_LOG_LEVEL');
  });

  it('reports every problem at once, not just the first', () => {
    expect(problems('listen: { port: "x" }\nlog: { level: loud }\n').length).toBeGreaterThanOrEqual(
      3,
    );
  });
});

function route(path: string): string {
  return `${MIN}routes:\n  - { name: a, methods: [GET], path: ${JSON.stringify(path)}, scopes: [read] }\n`;
}

function identity(headers: Record<string, string>): string {
  const fields = Object.entries(headers)
    .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
    .join(', ');
  return `${MIN}identityHeaders: { ${fields} }\n`;
}

function accepted(yaml: string): boolean {
  try {
    parseConfig(yaml, 't');
    return true;
  } catch (err) {
    if (err instanceof ConfigError) return false;
    throw err;
  }
}

describe('route paths: the reserved prefix and dot segments', () => {
  it.each([
    '/_keygate',
    '/_keygate/v1',
    '/_keygate/v1/accounts',
    '/_keygate/**',
    '/_keygate/*',
    '/_KEYGATE/v1',
    '/_Keygate/**',
  ])('%s is refused at routes[0].path', (path) => {
    const found = problems(route(path));
    expect(found).toContainEqual({
      path: 'routes[0].path',
      message: expect.stringContaining('reserved'),
    });
  });

  it.each([
    '/.',
    '/..',
    '/model/..',
    '/model/../_keygate/v1',
    '/model/./allocation',
    '/a/../**',
    '/../*',
  ])('%s (dot segment) is refused at routes[0].path', (path) => {
    const found = problems(route(path));
    expect(found).toContainEqual({
      path: 'routes[0].path',
      message: expect.stringContaining('dot segment'),
    });
  });

  it.each([
    '/_keygates',
    '/x/_keygate',
    '/keygate',
    '/.well-known',
    '/a/..b',
    '/a/...',
    '/**',
    '/*/v1',
  ])('%s is accepted (not the reserved prefix, not a dot segment)', (path) => {
    expect(accepted(route(path))).toBe(true);
  });

  it('property: a pattern is accepted only if no segment is "." or ".." and it is not under /_keygate', () => {
    const segment = fc.oneof(
      fc.constantFrom('.', '..', '*', '**', '_keygate', '_KeyGate', 'model', '...', '.a', 'a.'),
      fc.stringMatching(/^[A-Za-z0-9._~-]{1,6}$/),
    );
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 5 }), (segments) => {
        const path = `/${segments.join('/')}`;
        const ok = accepted(route(path));
        if (segments.some((s) => s === '.' || s === '..')) expect(ok).toBe(false);
        if (segments[0]?.toLowerCase() === '_keygate') expect(ok).toBe(false);
        if (ok) {
          expect(segments.includes('.') || segments.includes('..')).toBe(false);
          expect(
            path.toLowerCase().startsWith('/_keygate/') || path.toLowerCase() === '/_keygate',
          ).toBe(false);
        }
      }),
    );
  });
});

describe('identity header names', () => {
  const RESERVED = [
    'Host',
    'host',
    'Content-Length',
    'Transfer-Encoding',
    'Connection',
    'Keep-Alive',
    'TE',
    'Trailer',
    'Upgrade',
    'Expect',
    'Authorization',
    'Proxy-Authorization',
    'Proxy-Anything',
    'X-API-KEY',
    'x-api-key',
    'Cookie',
    'Forwarded',
    'X-Forwarded-For',
    'X-Forwarded-User',
    'x-forwarded-anything',
    'X-Real-IP',
    'X-Request-Id',
    'X-Original-URI',
    'X-Envoy-Original-Path',
    'X-HTTP-Method-Override',
    'True-Client-IP',
    'Via',
    'constructor',
    'Constructor',
  ];
  for (const field of ['account', 'keyId', 'role']) {
    it.each(RESERVED)(`identityHeaders.${field}: %s is refused`, (name) => {
      const found = problems(identity({ [field]: name }));
      expect(found.map((p) => p.path)).toContain(`identityHeaders.${field}`);
    });
  }

  it.each([
    ['same name', { account: 'X-User', keyId: 'X-User' }],
    ['different case', { account: 'X-User', role: 'x-USER' }],
    ['default name reused', { role: 'x-keygate-account' }],
  ])('two identity headers that are one header (%s) are refused', (_name, headers) => {
    const found = problems(identity(headers));
    expect(found.length).toBe(1);
    expect(found[0]?.message).toContain('same header');
  });

  it.each(['X_Forwarded_For', 'X-User name', '__proto__', 'x-user:', ''])(
    'a name that is not a plain token (%j) is refused',
    (name) => {
      expect(accepted(identity({ account: name }))).toBe(false);
    },
  );

  it('accepts distinct, unreserved names', () => {
    const config = parseConfig(
      identity({ account: 'X-Tenant', keyId: 'X-Tenant-Key', role: 'X-Tenant-Role' }),
      't',
    );
    expect(config.identityHeaders).toEqual({
      account: 'X-Tenant',
      keyId: 'X-Tenant-Key',
      role: 'X-Tenant-Role',
    });
  });

  it('property: any accepted triple is three different, unreserved headers', () => {
    const name = fc.oneof(
      fc.constantFrom(...RESERVED, 'X-Keygate-Account', 'x-keygate-account', 'X-A', 'x-a'),
      fc.stringMatching(/^[A-Za-z0-9-]{1,12}$/),
    );
    fc.assert(
      fc.property(name, name, name, (account, keyId, role) => {
        if (!accepted(identity({ account, keyId, role }))) return;
        const lower = [account, keyId, role].map((n) => n.toLowerCase());
        expect(new Set(lower).size).toBe(3);
        for (const n of lower) {
          expect(RESERVED.map((r) => r.toLowerCase())).not.toContain(n);
          expect(/^(proxy-|x-forwarded-|x-original-|x-envoy-)/.test(n)).toBe(false);
        }
      }),
    );
  });
});

describe('upstream.url', () => {
  it.each([
    'http://user:secret@agg:9004',
    'http://user@agg:9004',
    'http://:secret@agg:9004',
    'https://token@agg/model',
  ])('credentials in %s are refused, and the message does not echo them', (url) => {
    const found = problems(`upstream: { url: ${JSON.stringify(url)} }\n`);
    expect(found).toEqual([
      { path: 'upstream.url', message: expect.stringContaining('credentials') },
    ]);
    expect(JSON.stringify(found)).not.toContain('secret');
    expect(JSON.stringify(found)).not.toContain('token');
  });

  it('credentials set by KEYGATE_UPSTREAM_URL are refused and the env variable is named', () => {
    const found = problems(MIN, { KEYGATE_UPSTREAM_URL: 'http://u:hunter2@agg:9004' });
    expect(found[0]?.path).toBe('upstream.url');
    expect(found[0]?.message).toContain('KEYGATE_UPSTREAM_URL');
    expect(JSON.stringify(found)).not.toContain('hunter2');
  });

  it.each(['http://agg:9004/?token=x', 'http://agg:9004/model#x', 'http://agg:9004?'])(
    'a query or fragment (%s) is refused: it would be silently dropped',
    (url) => {
      expect(problems(`upstream: { url: ${JSON.stringify(url)} }\n`).map((p) => p.path)).toEqual([
        'upstream.url',
      ]);
    },
  );

  it.each(['http://agg:9004', 'https://agg.example/model', 'http://[::1]:9004/base/path'])(
    '%s is accepted',
    (url) => {
      expect(accepted(`upstream: { url: ${JSON.stringify(url)} }\n`)).toBe(true);
    },
  );
});

describe('redactUrl', () => {
  it.each([
    ['http://user:secret@agg:9004/x', 'http://user:***@agg:9004/x'],
    ['http://token@agg:9004', 'http://***@agg:9004/'],
    ['redis://:pw@r:6379/0', 'redis://:***@r:6379/0'],
    ['http://agg:9004', 'http://agg:9004/'],
    ['not a url secret', '(unparseable URL)'],
  ])('%s → %s', (raw, printed) => {
    expect(redactUrl(raw)).toBe(printed);
  });

  it('property: the password and a lone user name never survive', () => {
    const secret = fc.stringMatching(/^[A-Za-z0-9]{8,20}$/);
    fc.assert(
      fc.property(secret, fc.boolean(), (s, withUser) => {
        const raw = withUser ? `http://someone:${s}@h:1/p` : `http://${s}@h:1/p`;
        expect(redactUrl(raw)).not.toContain(s);
      }),
    );
  });
});

describe('timeouts fit Node timers', () => {
  it.each([
    'listen.drainTimeout',
    'listen.requestTimeout',
    'listen.bodyIdleTimeout',
    'upstream.timeout',
  ])(
    '%s: 30d is refused naming the path (it would overflow setTimeout and fire at once)',
    (path) => {
      const [section, key] = path.split('.') as [string, string];
      const yaml =
        section === 'upstream'
          ? `upstream: { url: "http://u:1", ${key}: 30d }\n`
          : `${MIN}${section}: { ${key}: 30d }\n`;
      expect(() => parseConfig(yaml, 't')).toThrow(new RegExp(`${path}: at most 24d`));
      expect(() => parseConfig(yaml.replace('30d', '24d'), 't')).not.toThrow();
    },
  );
});

describe('durations carry their unit after parsing', () => {
  // Every duration a user can write, by the path they write it at, and where code reads it.
  const DURATIONS = [
    ['listen', 'headersTimeout'],
    ['listen', 'requestTimeout'],
    ['listen', 'keepAliveTimeout'],
    ['listen', 'drainTimeout'],
    ['listen', 'bodyIdleTimeout'],
    ['upstream', 'connectTimeout'],
    ['upstream', 'timeout'],
    ['store.redis', 'commandTimeout'],
    ['store.redis', 'connectTimeout'],
    ['keys', 'cacheTtl'],
    ['keys', 'negativeCacheTtl'],
    ['keys.failureBudget', 'window'],
  ] as const;

  function yamlSetting(section: string, key: string, value: string): string {
    const inner = section
      .split('.')
      .reduceRight((acc, part) => `{ ${part}: ${acc} }`, `{ ${key}: ${value} }`);
    // The outer braces make it a flow mapping; upstream needs its url beside the setting.
    const body = inner.slice(2, -2);
    return section === 'upstream'
      ? `upstream: { url: "http://127.0.0.1:9004", ${key}: ${value} }\n`
      : `${MIN}${body}\n`;
  }

  function read(config: unknown, section: string, name: string): unknown {
    let node = config as Record<string, unknown>;
    for (const part of section.split('.')) node = node[part] as Record<string, unknown>;
    return Object.hasOwn(node, name) ? node[name] : 'absent';
  }

  it.each(DURATIONS)(
    '%s.%s: written as the user writes it, read back in ms under <name>Ms only',
    (section, key) => {
      const config = parseConfig(yamlSetting(section, key, '"1.5s"'), 't');
      expect(read(config, section, `${key}Ms`)).toBe(1500);
      expect(read(config, section, key)).toBe('absent');
    },
  );

  it.each(DURATIONS)(
    '%s.%s: a bad value is reported at the path the user wrote, not the internal name',
    (section, key) => {
      expect(problems(yamlSetting(section, key, '"soon"'))).toEqual([
        expect.objectContaining({ path: `${section}.${key}` }),
      ]);
    },
  );

  it('the internal name is not a config key: `keys.cacheTtlMs` in YAML is refused', () => {
    expect(problems(`${MIN}keys: { cacheTtlMs: 5 }\n`)).toEqual([
      { path: 'keys.cacheTtlMs', message: expect.stringContaining('unknown key') },
    ]);
  });
});

describe('ops.keyExpiryRefresh and ops.keyInUseWithin', () => {
  it.each([
    ['keyExpiryRefresh', '1s'],
    ['keyExpiryRefresh', 'soon'],
    ['keyExpiryRefresh', '30d'],
    ['keyInUseWithin', '10s'],
  ])('ops.%s: %s is refused, naming the path', (name, value) => {
    expect(() =>
      parseConfig(
        `upstream: {url: "http://127.0.0.1:9"}\nstore: {type: file}\nops: {${name}: "${value}"}\n`,
        'x',
      ),
    ).toThrow(`ops.${name}`);
  });
});

describe('roles: every name is checked, __proto__ included', () => {
  it.each(['__proto__', 'Admin', '1role', 'a b', 'has_prototype\u0000'])(
    'role %j is refused with its path',
    (name) => {
      const yaml = `${MIN}roles:\n  ${JSON.stringify(name)}: [read]\n  reader: [read]\n`;
      expect(problems(yaml).map((p) => p.path)).toContain(`roles.${name}`);
    },
  );

  it('a role named constructor is an ordinary own role', () => {
    const config = parseConfig(`${MIN}roles: { constructor: [read], reader: [read] }\n`, 't', {});
    expect(Object.hasOwn(config.roles, 'constructor')).toBe(true);
    expect(config.roles.constructor).toEqual(['read']);
  });

  it('property: an accepted roles mapping keeps every role it was given', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 8 }), fc.constantFrom(['read'], ['admin']), {
          maxKeys: 4,
        }),
        (roles) => {
          const text = `${MIN}roles: ${JSON.stringify(roles)}\n`;
          let config: ReturnType<typeof parseConfig>;
          try {
            config = parseConfig(text, 't', {});
          } catch {
            return;
          }
          expect(Object.keys(config.roles).sort()).toEqual(Object.keys(roles).sort());
        },
      ),
    );
  });
});
