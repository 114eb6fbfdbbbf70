import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { KeygateError } from '../errors.js';
import { isValidKeyId } from '../keys/key-format.js';
import {
  ACCOUNT_NAME,
  type Actor,
  type KeyService,
  MAX_EXPIRES_AT,
  MAX_GRACE_SECONDS,
} from '../keys/key-service.js';
import type { Principal } from '../keys/principal.js';
import { ADMIN_API_PREFIX } from '../shared/keygate-prefix.js';
import { nullProtoRecord } from '../shared/null-proto-record.js';
import openapi from './openapi.json' with { type: 'json' };
import { readJsonBody } from './read-json-body.js';

/** An account's quota; bounds are KeyService's (checkRateLimit), shared with the CLI. */
const rateLimitBody = z
  .strictObject({ requests: z.number().int(), per_seconds: z.number().int() })
  .nullable()
  .optional()
  .transform((l) => (l == null ? l : { requests: l.requests, perSeconds: l.per_seconds }));
/**
 * The shape only (known kinds, string values: `filters.Allocation: unknown field`);
 * KeyService.checkFilters checks each expression, for the CLI and apply too.
 */
const filtersBody = z.strictObject({
  allocation: z.string().optional(),
  assets: z.string().optional(),
  cloudCost: z.string().optional(),
});
const createAccountBody = z.strictObject({
  name: z.string(),
  role: z.string(),
  description: z.string().optional(),
  rate_limit: rateLimitBody,
  filters: filtersBody.optional(),
});
const updateAccountBody = z
  .strictObject({
    role: z.string().optional(),
    description: z.string().optional(),
    disabled: z.boolean().optional(),
    rate_limit: rateLimitBody,
    filters: filtersBody.optional(),
  })
  .refine(
    (b) => Object.keys(b).length > 0,
    'expected at least one of role, description, disabled, rate_limit, filters',
  );
const createKeyBody = z.strictObject({
  description: z.string(),
  expires_at: z
    .number()
    .int()
    .min(0)
    .max(MAX_EXPIRES_AT, `expected Unix seconds up to ${MAX_EXPIRES_AT} (9999-12-31T23:59:59Z)`)
    .optional(),
  scopes: z.array(z.string()).optional(),
});
/** The accounts file as JSON; KeyService.applyAccounts validates `accounts` and names paths. */
const applyBody = z.strictObject({ accounts: z.unknown() });
/** An accounts file holds a hash per key (~150 bytes): 1 MiB is thousands of keys. */
const MAX_APPLY_BODY_BYTES = 1024 * 1024;

/** `?dry_run=true&prune=false`: absent = false; anything but true/false is a 400. */
function flag(req: IncomingMessage, name: string): boolean {
  const values = new URL(req.url ?? '/', 'http://keygate').searchParams.getAll(name);
  if (values.length === 0) return false;
  if (values.length === 1 && (values[0] === 'true' || values[0] === 'false'))
    return values[0] === 'true';
  throw new KeygateError('bad_request', `${name}: expected true or false, once`);
}

const rotateBody = z.strictObject({
  grace_seconds: z.number().int().min(0).max(MAX_GRACE_SECONDS).optional(),
});

/**
 * Path parameters, already checked against their patterns by the router: `name` is an account
 * name, `id` a key id. Null-prototype, so no template or client string meets Object.prototype.
 */
export type RouteParams = Readonly<Record<string, string>>;

interface AdminRequest {
  req: IncomingMessage;
  params: RouteParams;
  actor: Actor;
  keys: KeyService;
}

interface AdminAnswer {
  status: number;
  body?: unknown;
}

interface AdminRoute {
  method: string;
  /** The OpenAPI path template, relative to ADMIN_API_PREFIX. */
  path: string;
  handle(r: AdminRequest): Promise<AdminAnswer>;
}

/** One row per endpoint; the OpenAPI document must list exactly these (a test checks). */
export const ADMIN_ROUTES: readonly AdminRoute[] = [
  {
    method: 'GET',
    path: '/openapi.json',
    handle: async () => ({ status: 200, body: openapi }),
  },
  {
    method: 'POST',
    path: '/service-accounts',
    handle: async ({ req, actor, keys }) => {
      const { rate_limit: rateLimit, ...body } = await readJsonBody(req, createAccountBody);
      return { status: 201, body: await keys.createAccount(actor, { ...body, rateLimit }) };
    },
  },
  {
    method: 'GET',
    path: '/service-accounts',
    handle: async ({ actor, keys }) => ({
      status: 200,
      body: { items: await keys.listAccounts(actor) },
    }),
  },
  {
    method: 'GET',
    path: '/service-accounts/{name}',
    handle: async ({ params, actor, keys }) => ({
      status: 200,
      body: await keys.getAccount(actor, params.name as string),
    }),
  },
  {
    method: 'PATCH',
    path: '/service-accounts/{name}',
    handle: async ({ req, params, actor, keys }) => {
      const { rate_limit: rateLimit, ...body } = await readJsonBody(req, updateAccountBody);
      const input = { ...body, rateLimit };
      return { status: 200, body: await keys.updateAccount(actor, params.name as string, input) };
    },
  },
  {
    method: 'DELETE',
    path: '/service-accounts/{name}',
    handle: async ({ params, actor, keys }) => {
      await keys.deleteAccount(actor, params.name as string);
      return { status: 204 };
    },
  },
  {
    method: 'POST',
    path: '/service-accounts/{name}/api-keys',
    handle: async ({ req, params, actor, keys }) => {
      const body = await readJsonBody(req, createKeyBody);
      const issued = await keys.createKey(actor, params.name as string, {
        description: body.description,
        expiresAt: body.expires_at,
        scopes: body.scopes,
      });
      return { status: 201, body: issued };
    },
  },
  {
    method: 'GET',
    path: '/service-accounts/{name}/api-keys',
    handle: async ({ params, actor, keys }) => ({
      status: 200,
      body: { items: await keys.listKeys(actor, params.name as string) },
    }),
  },
  {
    method: 'DELETE',
    path: '/service-accounts/{name}/api-keys/{id}',
    handle: async ({ params, actor, keys }) => {
      await keys.revokeKey(actor, params.name as string, params.id as string);
      return { status: 204 };
    },
  },
  {
    method: 'POST',
    path: '/service-accounts/{name}/api-keys/{id}/rotate',
    handle: async ({ req, params, actor, keys }) => {
      const body = await readJsonBody(req, rotateBody);
      return {
        status: 201,
        body: await keys.rotateKey(
          actor,
          params.name as string,
          params.id as string,
          body.grace_seconds,
        ),
      };
    },
  },
  {
    method: 'POST',
    path: '/apply',
    handle: async ({ req, actor, keys }) => {
      const dryRun = flag(req, 'dry_run');
      const prune = flag(req, 'prune');
      const body = await readJsonBody(req, applyBody, MAX_APPLY_BODY_BYTES);
      const result = await keys.applyAccounts(
        actor,
        { accounts: body.accounts },
        { dryRun, prune },
      );
      return {
        status: 200,
        body: {
          changes: result.changes,
          ...(result.warnings.length > 0 ? { warnings: result.warnings } : {}),
        },
      };
    },
  },
];

/**
 * What a path parameter must look like. The path is already normalised (unreserved characters
 * decoded, everything else left as "%XX"), and both patterns are unreserved characters only,
 * so a parameter is compared as it stands: nothing is decoded here, so no malformed escape can
 * throw, and anything else ("%C0", "%2e", "Ab_c") is simply no such resource.
 */
const PARAM_CHECKS: ReadonlyMap<string, { test(value: string): boolean; what: string }> = new Map([
  [
    'name',
    {
      test: (value: string) => ACCOUNT_NAME.test(value),
      what: 'no such service account (names are 1-63 lower-case letters, digits or "-")',
    },
  ],
  ['id', { test: isValidKeyId, what: 'no such key (key ids are 12 letters or digits)' }],
]);

function matchTemplate(template: string, path: string): Record<string, string> | undefined {
  const want = template.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return undefined;
  const params = nullProtoRecord<string>(); // keys from the template, values from the client
  for (let i = 0; i < want.length; i++) {
    const w = want[i] as string;
    const g = got[i] as string;
    if (w.startsWith('{') && w.endsWith('}')) params[w.slice(1, -1)] = g;
    else if (w !== g) return undefined;
  }
  return params;
}

/**
 * Picks the route for a method and a path relative to ADMIN_API_PREFIX: 404 when no template
 * fits or a parameter does not match its pattern (no such resource can exist, whatever the
 * method), 405 with the allowed methods when only the method is wrong. Parameters it returns
 * always match their patterns.
 */
export function routeAdmin(
  method: string,
  relative: string,
): { route: AdminRoute; params: RouteParams } {
  const candidates: Array<{ route: AdminRoute; params: Record<string, string> }> = [];
  let refusal: KeygateError | undefined;
  for (const route of ADMIN_ROUTES) {
    const params = matchTemplate(route.path, relative);
    if (params === undefined) continue;
    const bad = badParam(route, params);
    if (bad === undefined) candidates.push({ route, params });
    else refusal ??= bad;
  }
  if (candidates.length === 0) {
    throw refusal ?? new KeygateError('not_found', 'no such keygate API endpoint');
  }
  const hit = candidates.find(
    (c) => c.route.method === method || (method === 'HEAD' && c.route.method === 'GET'),
  );
  if (!hit) {
    throw new AdminMethodError(
      candidates.map((c) => c.route.method),
      new KeygateError('method_not_allowed', `${method} is not allowed here`),
    );
  }
  return { route: hit.route, params: Object.freeze(hit.params) };
}

function badParam(route: AdminRoute, params: Record<string, string>): KeygateError | undefined {
  for (const [key, value] of Object.entries(params)) {
    const check = PARAM_CHECKS.get(key);
    // A template parameter without a check would reach KeyService unchecked: fail loudly.
    if (check === undefined) throw new Error(`admin route ${route.path}: unchecked {${key}}`);
    if (!check.test(value)) return new KeygateError('not_found', check.what);
  }
  return undefined;
}

/** A 405 and the methods the path does allow, for the Allow header. */
export class AdminMethodError extends Error {
  constructor(
    readonly allow: readonly string[],
    readonly error: KeygateError,
  ) {
    super(error.message);
  }
}

/** Serves one admin request; `path` is already normalised and starts with ADMIN_API_PREFIX. */
export async function handleAdmin(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  principal: Principal,
  keys: KeyService,
  requestId: string,
): Promise<void> {
  const relative = path.slice(ADMIN_API_PREFIX.length) || '/';
  const method = req.method ?? 'GET';
  let hit: ReturnType<typeof routeAdmin>;
  try {
    hit = routeAdmin(method, relative);
  } catch (err) {
    if (!(err instanceof AdminMethodError)) throw err;
    res.setHeader('allow', err.allow.join(', '));
    throw err.error;
  }
  // A filtered account sees only its team's data; any admin call (a key for an unfiltered
  // account, removing its own filters) would escape that bound, which no scope check can see.
  // admit refuses it first (filter_required); this is the same answer, kept beside the handlers.
  if (principal.filters !== undefined) {
    throw new KeygateError(
      'filter_required',
      "this key's service account is filtered (team-scoped); the admin API is not available to it",
    );
  }
  const answer = await hit.route.handle({
    req,
    params: hit.params,
    // The principal's effective scopes bound whatever this request may grant (invariant 3).
    actor: {
      kind: 'key',
      account: principal.account,
      keyId: principal.keyId,
      scopes: principal.scopes,
      requestId,
    },
    keys,
  });
  if (answer.body === undefined) {
    res.writeHead(answer.status, { 'x-request-id': requestId, 'cache-control': 'no-store' });
    res.end();
    return;
  }
  const json = JSON.stringify(answer.body);
  res.writeHead(answer.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
    'x-request-id': requestId,
  });
  res.end(method === 'HEAD' ? undefined : json);
}
