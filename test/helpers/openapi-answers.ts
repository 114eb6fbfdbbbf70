import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import openapi from '../../src/admin/openapi.json' with { type: 'json' };

/**
 * Every admin API answer a test receives (through send() or rawHttp()) is recorded here, and a
 * setup file (openapi-check.ts) checks them all against the OpenAPI document after each test
 * file: the status must be documented for the operation, the body must match that status's
 * schema, and headers the document requires (Allow on 405) must be there. So the document is
 * checked against what keygate really answers, not against what someone thought it answers.
 */
export interface AdminAnswer {
  method: string;
  /** The request target as sent (maybe non-normalised, maybe with a query). */
  target: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export const ADMIN_API_PREFIX = '/_keygate/v1';
const RESERVED_PREFIX = '/_keygate';

export const adminAnswers: AdminAnswer[] = [];

/** Records an answer when its target is under /_keygate (origin- or absolute-form). */
export function recordAdminAnswer(answer: AdminAnswer): void {
  if (adminPath(answer.target) !== undefined) adminAnswers.push(answer);
}

function adminPath(target: string): string | undefined {
  let path = target;
  if (!path.startsWith('/')) {
    try {
      path = new URL(target).pathname;
    } catch {
      return undefined;
    }
  }
  path = path.split('?')[0] ?? '';
  return path === RESERVED_PREFIX || path.startsWith(`${RESERVED_PREFIX}/`) ? path : undefined;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
interface ResponseObject {
  $ref?: string;
  content?: Record<string, { schema: Json }>;
  headers?: Record<string, { $ref: string }>;
}
interface HeaderObject {
  required?: boolean;
  schema: Json;
}
type Operation = { responses: Record<string, ResponseObject> };
const paths = openapi.paths as unknown as Record<string, Record<string, Operation | unknown>>;
const components = openapi.components as unknown as {
  schemas: Record<string, Json>;
  responses: Record<string, ResponseObject>;
  headers: Record<string, HeaderObject>;
};

const SCHEMAS_ID = 'https://keygate.invalid/openapi-schemas.json';

/** "#/components/schemas/X" → an absolute reference into the one schema ajv holds. */
function rebase(node: Json): Json {
  if (Array.isArray(node)) return node.map(rebase);
  if (node === null || typeof node !== 'object') return node;
  const out: { [key: string]: Json } = {};
  for (const [k, v] of Object.entries(node)) {
    out[k] =
      k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')
        ? `${SCHEMAS_ID}#/$defs/${v.slice('#/components/schemas/'.length)}`
        : rebase(v);
  }
  return out;
}

// Strict mode: an unknown keyword or a misspelt one in the document is an error, not ignored.
const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
ajv.addSchema({ $id: SCHEMAS_ID, $defs: rebase(components.schemas as Json) });
const compiled = new Map<Json, ValidateFunction>();
function validatorFor(schema: Json): ValidateFunction {
  let v = compiled.get(schema);
  if (v === undefined) {
    v = ajv.compile(rebase(schema) as object);
    compiled.set(schema, v);
  }
  return v;
}

function resolveResponse(r: ResponseObject): ResponseObject {
  if (r.$ref === undefined) return r;
  const name = r.$ref.replace('#/components/responses/', '');
  const target = components.responses[name];
  if (target === undefined) throw new Error(`unresolved ${r.$ref}`);
  return target;
}

const OPERATION_METHODS = ['get', 'put', 'post', 'delete', 'patch'];

function operationsOf(item: Record<string, unknown>): Map<string, Operation> {
  const ops = new Map<string, Operation>();
  for (const [method, op] of Object.entries(item)) {
    if (OPERATION_METHODS.includes(method)) ops.set(method.toUpperCase(), op as Operation);
  }
  return ops;
}

/** The path template an admin path falls under, if any ({name} and {id} match one segment). */
export function templateOf(relative: string): string | undefined {
  const got = relative.split('/');
  return Object.keys(paths).find((template) => {
    const want = template.split('/');
    return (
      want.length === got.length &&
      want.every((w, i) => (w.startsWith('{') ? (got[i] ?? '') !== '' : w === got[i]))
    );
  });
}

function header(headers: AdminAnswer['headers'], name: string): string | string[] | undefined {
  return headers[name.toLowerCase()];
}

/** Problems with one answer, or [] when the document describes it exactly. */
export function checkAdminAnswer(a: AdminAnswer): string[] {
  const path = adminPath(a.target);
  if (path === undefined) return [];
  const label = `${a.method} ${a.target} → ${a.status}`;
  const relative = path.startsWith(ADMIN_API_PREFIX)
    ? path.slice(ADMIN_API_PREFIX.length)
    : undefined;
  const template = relative === undefined ? undefined : templateOf(relative);
  const method = a.method === 'HEAD' ? 'GET' : a.method;
  const ops = template === undefined ? undefined : operationsOf(paths[template] ?? {});
  let responses: Record<string, ResponseObject>;
  let where: string;
  const op = ops?.get(method);
  if (op !== undefined) {
    responses = op.responses;
    where = `${method} ${template}`;
  } else if (ops !== undefined) {
    // A method the path does not serve: any of the path's error answers (405 is listed under
    // every operation), never a success.
    responses = Object.fromEntries(
      Object.entries([...ops.values()][0]?.responses ?? {}).filter(([s]) => !s.startsWith('2')),
    );
    where = `${a.method} (not served) ${template}`;
    const allow = String(header(a.headers, 'allow') ?? '');
    if (a.status === 405) {
      const want = [...ops.keys()].sort().join(', ');
      const got = allow
        .split(',')
        .map((m) => m.trim())
        .sort()
        .join(', ');
      if (got !== want) return [`${label}: Allow is "${allow}", the document says ${want}`];
    }
  } else {
    // No such endpoint: keygate answers the error envelope (404, or whatever refused first).
    responses = Object.fromEntries(
      Object.entries(components.responses).map(([, r]) => {
        const schema = r.content?.['application/json']?.schema as {
          properties?: { code?: { const?: number } };
        };
        return [String(schema?.properties?.code?.const ?? ''), r];
      }),
    );
    delete responses['405']; // a path that matches no template cannot be a wrong method
    where = `(no endpoint) ${path}`;
  }
  const documented = responses[String(a.status)];
  if (documented === undefined) {
    return [`${label}: status ${a.status} is not documented for ${where}`];
  }
  const response = resolveResponse(documented);
  const problems: string[] = [];
  for (const [name, ref] of Object.entries(response.headers ?? {})) {
    const h = components.headers[ref.$ref.replace('#/components/headers/', '')];
    const value = header(a.headers, name);
    if (value === undefined) {
      if (h?.required) problems.push(`${label}: header ${name} is required`);
      continue;
    }
    if (h !== undefined && !validatorFor(h.schema)(value)) {
      problems.push(`${label}: header ${name} "${String(value)}" does not match its schema`);
    }
  }
  const schema = response.content?.['application/json']?.schema;
  if (schema === undefined || a.method === 'HEAD') {
    if (a.text !== '')
      problems.push(`${label}: the document says no body, got ${a.text.slice(0, 200)}`);
    return problems;
  }
  const type = String(header(a.headers, 'content-type') ?? '');
  if (!type.startsWith('application/json')) {
    problems.push(`${label}: content-type is "${type}", not application/json`);
  }
  let body: unknown;
  try {
    body = JSON.parse(a.text);
  } catch {
    return [...problems, `${label}: body is not JSON: ${a.text.slice(0, 200)}`];
  }
  const validate = validatorFor(schema);
  if (!validate(body)) {
    problems.push(
      `${label}: body does not match ${where} ${a.status}: ${ajv.errorsText(validate.errors)}`,
    );
  }
  return problems;
}
