import { isIP } from 'node:net';
import { z } from 'zod';
import { FILTER_KINDS } from '../policy/filter-kinds.js';
import { canonicalHeaderName } from '../shared/header-name.js';
import { KEYGATE_PREFIX } from '../shared/keygate-prefix.js';
import { parseDurationMs } from './duration.js';
import { reservedHeaderReason } from './reserved-headers.js';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

const NAME = /^[a-z][a-z0-9_-]{0,62}$/;
const HEADER_NAME = /^[A-Za-z0-9-]{1,64}$/;

/** Checks every own key of a mapping, `__proto__` included, before a z.record sees it. */
function ownKeysMatch(pattern: RegExp, what: string) {
  return (value: unknown, ctx: z.RefinementCtx): void => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return;
    for (const key of Object.keys(value)) {
      if (!pattern.test(key))
        ctx.addIssue({ code: 'custom', path: [key], message: `expected ${what}` });
    }
  };
}
// Literal path characters a route pattern may hold: the RFC 3986 unreserved set plus ':' and '@'.
const PATTERN_SEGMENT = /^(?:\*\*?|[A-Za-z0-9._~:@!$&'()+,=-]+)$/;

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDurationMs(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message:
        'expected a duration such as "500ms", "30s", "5m", "24h", "90d" or a number of seconds',
    });
    return z.NEVER;
  }
  return ms;
});

/**
 * Only the origin and path of upstream.url are used (the upstream client connects to the
 * origin; the path is the base path): userinfo, a query or a fragment would be silently
 * dropped, and a password in it would be one more copy of a secret in a config file.
 */
const upstreamUrl = z.string().superRefine((u, ctx) => {
  if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol)) {
    ctx.addIssue({ code: 'custom', message: 'expected an http:// or https:// URL' });
    return;
  }
  const url = new URL(u);
  if (url.username !== '' || url.password !== '') {
    ctx.addIssue({
      code: 'custom',
      message:
        'must not contain credentials ("user:password@"): keygate does not send them upstream; remove them from the URL',
    });
  }
  if (url.search !== '' || url.hash !== '' || /[?#]/.test(u)) {
    ctx.addIssue({
      code: 'custom',
      message: 'must not contain a query or fragment: only the origin and path are used',
    });
  }
});

/** Node timers hold at most 2^31-1 ms (about 24.8 days); a longer one fires at once. */
const MAX_TIMER_MS = 2_147_483_647;
const timeout = duration.refine((ms) => ms <= MAX_TIMER_MS, {
  message: 'at most 24d: longer timeouts overflow Node timers and would fire at once',
});

/**
 * After validation a duration's name carries its unit: users write `cacheTtl: 30s`, code reads
 * `cacheTtlMs`. Renamed by the schema's last transform, which runs only on valid input, so
 * error messages still name the path the user wrote.
 */
function withMsNames<T extends object, const K extends keyof T & string>(
  value: T,
  names: readonly K[],
): WithMsNames<T, K> {
  const renamed = new Set<string>(names);
  return Object.fromEntries(
    Object.entries(value).map(([name, v]) => [renamed.has(name) ? `${name}Ms` : name, v]),
  ) as WithMsNames<T, K>;
}

/** T with each field K renamed K + "Ms" (one flat object type, for readable hovers). */
type WithMsNames<T, K extends keyof T & string> = {
  [P in keyof T as P extends K ? `${P}Ms` : P]: T[P];
};

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);

/** keygate's own prefix (admin API); compared case-insensitively here, to refuse look-alikes. */
const ADMIN_SEGMENT = KEYGATE_PREFIX.slice(1);

const routePattern = z.string().superRefine((path, ctx) => {
  if (path === '/') return;
  if (!path.startsWith('/') || path.endsWith('/')) {
    ctx.addIssue({ code: 'custom', message: 'must start with "/" and not end with "/"' });
    return;
  }
  const segments = path.slice(1).split('/');
  segments.forEach((segment, i) => {
    if (!PATTERN_SEGMENT.test(segment)) {
      ctx.addIssue({
        code: 'custom',
        message: `segment "${segment}" is not a literal, "*" or "**"`,
      });
    } else if (segment === '**' && i !== segments.length - 1) {
      ctx.addIssue({ code: 'custom', message: '"**" may only be the last segment' });
    } else if (segment === '.' || segment === '..') {
      // Request paths with dot segments are refused before matching, so such a rule could
      // never match; and an upstream that resolves them would see a different path.
      ctx.addIssue({ code: 'custom', message: `dot segment "${segment}" is not allowed` });
    }
  });
  if (segments[0]?.toLowerCase() === ADMIN_SEGMENT) {
    // The admin API is dispatched before any route rule; a rule here could never apply, and
    // reads as if the keygate API were reachable through it.
    ctx.addIssue({
      code: 'custom',
      message: `"/${ADMIN_SEGMENT}" is reserved for keygate's own API`,
    });
  }
});

const route = z.strictObject({
  name: z.string().regex(NAME, 'expected a lower-case name: letters, digits, "-" or "_"'),
  methods: z.array(z.enum(HTTP_METHODS)).min(1),
  path: routePattern,
  scopes: z.array(z.string().regex(NAME)).min(1),
  /**
   * The kind of data this route serves (DESIGN §16): a filtered account's filter of this kind
   * is ANDed into the request's `filter` parameter; a filtered account is refused on a route
   * without one. Only on GET/HEAD routes (checked below, with the other route checks).
   */
  filter: z.enum(FILTER_KINDS).optional(),
});

/** A role's default quota (DESIGN §16): whole-second windows, as RateLimit-Policy's `w` says. */
const rateLimit = z.strictObject({
  requests: z.number().int().min(1).max(1_000_000_000),
  per: duration.refine((ms) => ms >= 1000 && ms <= 30 * 86_400_000 && ms % 1000 === 0, {
    message: 'expected a whole number of seconds from 1s to 30d, such as "1s", "1m" or "1h"',
  }),
});

const redisUrl = z
  .string()
  .refine((u) => /^rediss?:\/\//.test(u), 'expected a redis:// or rediss:// URL');

const redis = z
  .strictObject({
    url: redisUrl.optional(),
    sentinel: z
      .strictObject({
        name: z.string().min(1),
        sentinels: z.array(z.strictObject({ host, port })).min(1),
        password: z.string().optional(),
        sentinelPassword: z.string().optional(),
        db: z.number().int().min(0).default(0),
        tls: z.boolean().default(false),
      })
      .optional(),
    cluster: z
      .strictObject({
        nodes: z.array(redisUrl).min(1),
        password: z.string().optional(),
        tls: z.boolean().default(false),
      })
      .optional(),
    keyPrefix: z.string().default('kg:'),
    /** A command on the request path fails after this, so an outage becomes a quick 503. */
    commandTimeout: timeout.default(1000),
    connectTimeout: timeout.default(5000),
  })
  .superRefine((r, ctx) => {
    const set = [r.url, r.sentinel, r.cluster].filter((x) => x !== undefined).length;
    if (set > 1) {
      ctx.addIssue({ code: 'custom', message: 'set only one of url, sentinel, cluster' });
    }
  });

const cidr = z.string().refine((value) => {
  const [address, bits, extra] = value.split('/');
  if (extra !== undefined || address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d+$/.test(bits) && n >= 0 && n <= (family === 4 ? 32 : 128);
}, 'expected an IP address or CIDR block such as 10.0.0.0/8');

/**
 * Identity headers are set by keygate on every forwarded request: none may be a header that
 * frames the message, carries a credential or says where the request came from, and no two
 * may be the same header (the second would silently replace the first).
 */
function checkIdentityHeaders(
  headers: Record<'account' | 'keyId' | 'role', string>,
  ctx: z.RefinementCtx,
): void {
  const seen = new Map<string, string>();
  for (const field of ['account', 'keyId', 'role'] as const) {
    const name = headers[field];
    const canonical = canonicalHeaderName(name);
    const reason = reservedHeaderReason(name);
    const first = seen.get(canonical);
    if (reason !== undefined) {
      ctx.addIssue({ code: 'custom', path: [field], message: reason });
    } else if (first !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [field],
        message: `"${name}" is the same header as identityHeaders.${first}`,
      });
    }
    if (first === undefined) seen.set(canonical, field);
  }
}

/**
 * The header keygate presents its own upstream credential in (DESIGN §15). Like an identity
 * header it may not frame the message or say where the request came from; unlike one it may
 * be a credential header, since that is what it is.
 */
const credentialHeader = z
  .string()
  .regex(HEADER_NAME)
  .superRefine((name, ctx) => {
    const canonical = canonicalHeaderName(name);
    if (canonical === 'x-api-key' || canonical === 'authorization') return;
    const reason = reservedHeaderReason(name);
    if (reason !== undefined) ctx.addIssue({ code: 'custom', message: reason });
    else if (canonical.startsWith('x-keygate-')) {
      ctx.addIssue({
        code: 'custom',
        message: `"${name}" is in keygate's own x-keygate-* namespace (identity headers)`,
      });
    }
  });

/** What keygate does with a request (DESIGN §13): forward it, answer for a data plane, or both. */
export const MODES = ['proxy', 'authz', 'both'] as const;
export type Mode = (typeof MODES)[number];

export const configSchema = z
  .strictObject({
    mode: z.enum(MODES).default('proxy'),
    authz: z
      .strictObject({
        /**
         * How long the data plane may cache an allow (Cache-Control max-age). 0 → no-store:
         * every request is asked, so a revocation applies to the very next one.
         */
        cacheTtl: duration.default(0),
      })
      .prefault({}),
    listen: z
      .strictObject({
        host: host.default('0.0.0.0'),
        port: port.default(8080),
        /** Request line + headers; 32 KiB like Kubecost's nginx (large_client_header_buffers 4 32k). */
        maxHeaderBytes: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024)
          .default(32 * 1024),
        headersTimeout: timeout.default(60_000),
        /** Time to receive a whole request (body included); 0 disables it. */
        requestTimeout: timeout.default(300_000),
        /** Above the usual load balancers' idle timeouts (AWS ALB 60 s), so they close first. */
        keepAliveTimeout: timeout.default(65_000),
        /** On SIGTERM, how long in-flight requests may finish; under Kubernetes' 30 s grace. */
        drainTimeout: timeout.default(25_000),
        /**
         * A request body that sends nothing for this long is cut off (408): a trickling body
         * would otherwise hold an upstream connection for the whole request timeout.
         */
        bodyIdleTimeout: timeout.default(15_000),
        /** Requests one account may have in flight at once (429 beyond): no tenant holds the pool. */
        maxInflightPerAccount: z.number().int().min(1).default(64),
      })
      .prefault({}),
    ops: z
      .strictObject({
        // Loopback unless told otherwise: /metrics names accounts and their traffic.
        host: host.default('127.0.0.1'),
        port: port.default(9464),
        /** When set, /metrics requires `Authorization: Bearer <contents of this file>`. */
        metricsTokenFile: z.string().min(1).optional(),
        /** How often keygate_keys_expiring is refreshed from the store (one scan of all keys). */
        keyExpiryRefresh: timeout
          .refine((ms) => ms >= 10_000, { message: 'at least 10s: each refresh reads every key' })
          .default(300_000),
        /** A key last used within this counts as in use (keygate_keys_expiring{in_use}). */
        keyInUseWithin: duration
          .refine((ms) => ms >= 60_000, {
            message: 'at least 1m: last use is recorded at most once a minute',
          })
          .default(7 * 86_400_000),
      })
      .prefault({}),
    metrics: z
      .strictObject({
        /**
         * The `account` label on keygate_requests_total. Off for deployments with very many
         * service accounts (one series per account × route × method × code): every value is
         * then "_all", so the label set never changes.
         */
        accountLabel: z.boolean().default(true),
      })
      .prefault({}),
    upstream: z
      .strictObject({
        url: upstreamUrl,
        stripPrefix: z
          .string()
          .regex(/^\/[A-Za-z0-9._~/-]*[^/]$/, 'expected a path prefix such as /model')
          .optional(),
        connectTimeout: timeout.default(5000),
        timeout: timeout.default(300_000),
        connections: z.number().int().min(1).max(4096).default(128),
        /** Requests that may wait for a free upstream connection; beyond it, 503 at once. */
        queue: z.number().int().min(0).default(256),
        /**
         * More client headers never to forward, besides keygate's own list: names, or prefixes
         * ending in "*" (e.g. "x-internal-*"). Compared case-insensitively, "_" read as "-".
         */
        dropHeaders: z
          .array(
            z
              .string()
              .regex(/^[A-Za-z0-9_-]+\*?$/, 'expected a header name or a prefix ending in "*"'),
          )
          .default([]),
        /** keygate's own credential for the upstream, read from a mounted Secret (DESIGN §15). */
        credential: z
          .strictObject({
            header: credentialHeader.default('X-API-KEY'),
            file: z.string().min(1),
          })
          .optional(),
      })
      // Required unless mode is authz (checked below): an authz-only keygate forwards nothing.
      .optional(),
    trustedProxies: z.array(cidr).default([]),
    store: z
      .strictObject({
        type: z.enum(['redis', 'file']).default('file'),
        redis: redis.prefault({}),
        file: z
          .strictObject({ path: z.string().min(1).default('./data/keygate.json') })
          .prefault({}),
      })
      .prefault({}),
    keys: z
      .strictObject({
        prefix: z
          .string()
          .regex(/^[a-z][a-z0-9]{0,15}$/, 'expected 1-16 lower-case letters or digits, no "_"')
          .default('kg'),
        cacheTtl: duration.default(30_000),
        cacheMaxEntries: z.number().int().min(1).default(10_000),
        /** How long a failed verification is remembered, so a repeated wrong key costs no argon2. */
        negativeCacheTtl: duration.default(10_000),
        argon2: z
          .strictObject({
            memoryCost: z.number().int().min(1024).default(19456),
            timeCost: z.number().int().min(1).default(2),
            parallelism: z.number().int().min(1).max(16).default(1),
          })
          .prefault({}),
        verifyConcurrency: z.number().int().min(1).max(64).default(2),
        verifyQueue: z.number().int().min(0).default(64),
        /**
         * argon2 verifications that may fail per key id and per client address within
         * `window`; past it, further unproven attempts are refused (429) without argon2.
         */
        failureBudget: z
          .strictObject({
            perKeyId: z.number().int().min(1).default(10),
            perAddress: z.number().int().min(1).default(30),
            window: duration.default(60_000),
          })
          .prefault({}),
      })
      .prefault({}),
    roles: z
      // zod's record silently drops a `__proto__` key without checking it against the key
      // schema, so `roles: {__proto__: [admin]}` would vanish without a word: every own key is
      // checked here first, and a bad name is an error naming it.
      .unknown()
      .superRefine(
        ownKeysMatch(NAME, 'a role name: a lower-case letter, then letters, digits, _ or -'),
      )
      .pipe(z.record(z.string().regex(NAME), z.array(z.string().regex(NAME))))
      .default({ admin: ['read', 'write', 'admin'], member: ['read', 'write'], reader: ['read'] }),
    /** Per-role default quotas; an account's own `rate_limit` overrides its role's. */
    rateLimits: z
      // Checked like roles: zod's record would drop a `__proto__` key without a word.
      .unknown()
      .superRefine(ownKeysMatch(NAME, 'a role name'))
      .pipe(z.record(z.string().regex(NAME), rateLimit))
      .default({}),
    /** When the rate-limit store (Redis) cannot answer: refuse (503, fail closed) or allow. */
    rateLimitStoreDown: z.enum(['refuse', 'allow']).default('refuse'),
    routes: z.array(route).default([]),
    identityHeaders: z
      .strictObject({
        account: z.string().regex(HEADER_NAME).default('X-Keygate-Account'),
        keyId: z.string().regex(HEADER_NAME).default('X-Keygate-Key-Id'),
        role: z.string().regex(HEADER_NAME).default('X-Keygate-Role'),
      })
      .superRefine(checkIdentityHeaders)
      .prefault({}),
    log: z
      .strictObject({
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .default('info'),
      })
      .prefault({}),
  })
  .superRefine(
    (parsed, ctx) => {
      // Run even when other keys have problems (refinements otherwise wait for a clean parse),
      // so a missing upstream is reported with them, as it was while upstream was required.
      // The value may then be partly invalid: read only what is checked, as unknown.
      const { mode, upstream } = parsed as { mode?: unknown; upstream?: unknown };
      if (upstream === undefined && (mode === 'proxy' || mode === 'both')) {
        ctx.addIssue({
          code: 'custom',
          path: ['upstream'],
          message: `required in mode "${mode}" (only mode "authz" forwards nothing)`,
        });
      }
    },
    { when: () => true },
  )
  .superRefine((config, ctx) => {
    // A scope no role grants is almost always a typo, and would silently lock a route shut.
    const granted = new Set(Object.values(config.roles).flat());
    config.routes.forEach((r, i) => {
      r.scopes.forEach((scope, j) => {
        if (!granted.has(scope)) {
          ctx.addIssue({
            code: 'custom',
            path: ['routes', i, 'scopes', j],
            message: `scope "${scope}" is granted by no role`,
          });
        }
      });
    });
    for (const role of Object.keys(config.rateLimits)) {
      // A quota for a role that does not exist would silently limit nobody.
      if (!Object.hasOwn(config.roles, role)) {
        ctx.addIssue({
          code: 'custom',
          path: ['rateLimits', role],
          message: `role "${role}" is not defined in roles`,
        });
      }
    }
    const credential = config.upstream?.credential;
    if (credential !== undefined) {
      // keygate would set both: one would silently replace the other upstream.
      const clash = Object.values(config.identityHeaders).find(
        (name) => canonicalHeaderName(name) === canonicalHeaderName(credential.header),
      );
      if (clash !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['upstream', 'credential', 'header'],
          message: `"${credential.header}" is also an identity header`,
        });
      }
    }
    const names = new Set<string>();
    config.routes.forEach((r, i) => {
      if (names.has(r.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'name'],
          message: `duplicate route name "${r.name}"`,
        });
      }
      names.add(r.name);
      // keygate scopes the query string only. On a method with a body, a server that reads
      // form values (Go's r.FormValue prefers the body's) could take an unscoped filter from it.
      const withBody = r.methods.filter((m) => m !== 'GET' && m !== 'HEAD');
      if (r.filter !== undefined && withBody.length > 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'filter'],
          message: `a route with a filter kind may allow only GET and HEAD, not ${withBody.join(', ')}`,
        });
      }
    });
  })
  // Every duration, by where it is written: in code each one reads as milliseconds.
  .transform((c) => ({
    ...c,
    listen: withMsNames(c.listen, [
      'headersTimeout',
      'requestTimeout',
      'keepAliveTimeout',
      'drainTimeout',
      'bodyIdleTimeout',
    ]),
    authz: withMsNames(c.authz, ['cacheTtl']),
    rateLimits: Object.fromEntries(
      Object.entries(c.rateLimits).map(([role, l]) => [role, withMsNames(l, ['per'])]),
    ),
    ops: withMsNames(c.ops, ['keyExpiryRefresh', 'keyInUseWithin']),
    upstream:
      c.upstream === undefined ? undefined : withMsNames(c.upstream, ['connectTimeout', 'timeout']),
    store: { ...c.store, redis: withMsNames(c.store.redis, ['commandTimeout', 'connectTimeout']) },
    keys: {
      ...withMsNames(c.keys, ['cacheTtl', 'negativeCacheTtl']),
      failureBudget: withMsNames(c.keys.failureBudget, ['window']),
    },
  }));

export type Config = z.output<typeof configSchema>;
export type RouteConfig = Config['routes'][number];
