import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { KeygateError } from '../errors.js';
import type { Actor, KeyService } from '../keys/key-service.js';
import type { Principal } from '../keys/principal.js';
import { nullProtoRecord } from '../shared/null-proto-record.js';
import openapi from './openapi.json' with { type: 'json' };
import { readJsonBody } from './read-json-body.js';

/** keygate's own API; every route needs the admin scope (checked before this module). */
export const ADMIN_API_PREFIX = '/_keygate/v1';

const createAccountBody = z.strictObject({
  name: z.string(),
  role: z.string(),
  description: z.string().optional(),
});
const updateAccountBody = z
  .strictObject({
    role: z.string().optional(),
    description: z.string().optional(),
    disabled: z.boolean().optional(),
  })
  .refine((b) => Object.keys(b).length > 0, 'expected at least one of role, description, disabled');
const createKeyBody = z.strictObject({
  description: z.string(),
  expires_at: z.number().int().min(0).optional(),
  scopes: z.array(z.string()).optional(),
});
const rotateBody = z.strictObject({ grace_seconds: z.number().int().min(0).optional() });

interface AdminRequest {
  req: IncomingMessage;
  params: Record<string, string>;
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
      const body = await readJsonBody(req, createAccountBody);
      return { status: 201, body: await keys.createAccount(actor, body) };
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
      const body = await readJsonBody(req, updateAccountBody);
      return { status: 200, body: await keys.updateAccount(actor, params.name as string, body) };
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
];

function matchTemplate(template: string, path: string): Record<string, string> | undefined {
  const want = template.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return undefined;
  const params = nullProtoRecord<string>(); // keys from the template, values from the client
  for (let i = 0; i < want.length; i++) {
    const w = want[i] as string;
    const g = got[i] as string;
    if (w.startsWith('{') && w.endsWith('}')) params[w.slice(1, -1)] = decodeURIComponent(g);
    else if (w !== g) return undefined;
  }
  return params;
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
  const candidates = ADMIN_ROUTES.map((route) => ({
    route,
    params: matchTemplate(route.path, relative),
  })).filter((c) => c.params !== undefined);
  if (candidates.length === 0) throw new KeygateError('not_found', 'no such keygate API endpoint');
  const hit = candidates.find(
    (c) => c.route.method === method || (method === 'HEAD' && c.route.method === 'GET'),
  );
  if (!hit) {
    res.setHeader('allow', candidates.map((c) => c.route.method).join(', '));
    throw new KeygateError('method_not_allowed', `${method} is not allowed here`);
  }
  const answer = await hit.route.handle({
    req,
    params: hit.params as Record<string, string>,
    actor: { kind: 'key', account: principal.account, keyId: principal.keyId },
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
