import { request } from 'undici';
import { z } from 'zod';
import { ERROR_STATUS, type ErrorCode, KeygateError } from '../errors.js';
import { type AccountFilters, copyFilters } from '../keys/account-filters.js';
import { isValidKeyId } from '../keys/key-format.js';
import type { KeyManagement } from '../keys/key-management.js';
import {
  ACCOUNT_NAME,
  type AccountView,
  type Actor,
  type ApplyOptions,
  type ApplyResult,
  type CreateAccountInput,
  type CreateKeyInput,
  type IssuedKey,
  type KeyView,
  missingAccount,
  missingKey,
  type UpdateAccountInput,
} from '../keys/key-service.js';
import { ADMIN_API_PREFIX } from '../shared/keygate-prefix.js';
import type { AccountRateLimit } from '../store/key-store.js';
import type { RemoteTarget } from './remote-target.js';

/**
 * The remote CLI could not get an answer it can trust from the admin API (unreachable, a
 * redirect, not the admin API's JSON). Exit 1, code "remote". Its message never holds the key.
 */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
}

/** A list of every account is the largest answer; 8 MiB is ~50 000 accounts. */
export const MAX_ANSWER_BYTES = 8 * 1024 * 1024;
const TIMEOUT_MS = 30_000;
/** A server's error message is shown; a longer one is cut (it is a sentence, not a document). */
const MAX_MESSAGE = 500;

// Loose objects: the answer is printed as the server sent it (--json), as local mode prints
// KeyService's values, and a newer server's extra field is no reason to refuse.
// An older server sends no filters (it has none); any kind this client does not know is left
// out of what it prints rather than refusing the whole answer.
const accountFilters = z
  .object({
    allocation: z.string().optional(),
    assets: z.string().optional(),
    cloudCost: z.string().optional(),
  })
  .optional()
  .transform((f): AccountFilters => copyFilters(f === undefined ? undefined : stripUndefined(f)));
const accountView = z.looseObject({
  name: z.string(),
  role: z.string(),
  description: z.string(),
  disabled: z.boolean(),
  created_at: z.number(),
  updated_at: z.number(),
  // A server from before issue 14 sends none: no override it could know of.
  rate_limit: z
    .looseObject({ requests: z.number(), per_seconds: z.number() })
    .nullable()
    .default(null),
  filters: accountFilters,
});
const keyView = z.looseObject({
  id: z.string(),
  description: z.string(),
  scopes: z.array(z.string()).nullable(),
  created_at: z.number(),
  expires_at: z.number(),
  last_used_at: z.number(),
  revoked_at: z.number(),
  replaced_by: z.string(),
  status: z.enum(['active', 'rotating', 'expired', 'revoked']),
  request_count: z.number(),
});
const issuedKey = z.looseObject({
  id: z.string(),
  // Printed alone on stdout for `KEY=$(keygate keys create …)`: a header-safe token, nothing else.
  key: z.string().regex(/^[\x21-\x7e]{1,1024}$/),
  account: z.string(),
  description: z.string(),
  scopes: z.array(z.string()).nullable(),
  created_at: z.number(),
  expires_at: z.number(),
});
const accountList = z.looseObject({ items: z.array(accountView) });
const keyList = z.looseObject({ items: z.array(keyView) });
const accountWithKeys = accountView.extend({ keys: z.array(keyView) });
// Printed line by line by `keygate apply`: a closed set of actions, names as the API allows them.
const applyAnswer = z.looseObject({
  changes: z.array(
    z.looseObject({
      action: z.enum([
        'account.create',
        'account.update',
        'account.delete',
        'key.import',
        'key.update',
        'key.revoke',
      ]),
      account: z.string().regex(ACCOUNT_NAME),
      key_id: z
        .string()
        .regex(/^[0-9A-Za-z]{1,64}$/)
        .optional(),
      diff: z.array(z.object({ field: z.string(), from: z.unknown(), to: z.unknown() })).optional(),
    }),
  ),
  warnings: z.array(z.string()).optional(),
});
const errorBody = z.looseObject({ error: z.string(), message: z.string().optional() });

/** One HTTP exchange, as this client needs it: undici's request, or a test's. */
export interface HttpExchange {
  status: number;
  header(name: string): string | null;
  body: AsyncIterable<Uint8Array>;
  /** Stops reading a body that is not wanted (too large). */
  discard(): void;
}
export type Transport = (
  url: string,
  init: {
    method: string;
    headers: Record<string, string>;
    body?: string;
    timeoutMs: number;
    /** Aborted at the call's deadline: the request (and its body) stop there. */
    signal?: AbortSignal;
  },
) => Promise<HttpExchange>;

/**
 * undici's request rather than fetch: it follows no redirect (none is wanted: the key must go
 * only to the URL given) and has no "bad port" list (a keygate may listen on 6000).
 */
const undiciTransport: Transport = async (url, init) => {
  const res = await request(url, {
    method: init.method as 'GET',
    headers: init.headers,
    ...(init.body === undefined ? {} : { body: init.body }),
    headersTimeout: init.timeoutMs,
    bodyTimeout: init.timeoutMs,
    ...(init.signal === undefined ? {} : { signal: init.signal }),
  });
  return {
    status: res.statusCode,
    header: (name) => {
      // own-key: checked with hasOwn, and `name` is this file's constant, never the server's
      const value = Object.hasOwn(res.headers, name) ? res.headers[name] : undefined;
      return Array.isArray(value) ? (value[0] ?? null) : (value ?? null);
    },
    body: res.body,
    discard: () => res.body.destroy(),
  };
};

export interface RemoteOptions {
  transport?: Transport;
  timeoutMs?: number;
  maxAnswerBytes?: number;
  /** Unix seconds, for `keys list --expiring` (filtered here: the API has no such query). */
  now?: () => number;
}

/**
 * KeyManagement over a running keygate's admin API. The actor argument is ignored: the server
 * knows who asks from the key, bounds what it may grant (invariant 3) and writes the audit line.
 */
export class RemoteKeyManagement implements KeyManagement {
  private readonly transport: Transport;
  private readonly timeoutMs: number;
  private readonly maxAnswerBytes: number;
  private readonly now: () => number;

  constructor(
    private readonly target: RemoteTarget,
    options: RemoteOptions = {},
  ) {
    this.transport = options.transport ?? undiciTransport;
    this.timeoutMs = options.timeoutMs ?? TIMEOUT_MS;
    this.maxAnswerBytes = options.maxAnswerBytes ?? MAX_ANSWER_BYTES;
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
  }

  createAccount(_actor: Actor, input: CreateAccountInput): Promise<AccountView> {
    return this.call('POST', '/service-accounts', accountView, {
      name: input.name,
      role: input.role,
      ...(input.description === undefined ? {} : { description: input.description }),
      ...rateLimitBody(input.rateLimit),
      ...(input.filters === undefined ? {} : { filters: input.filters }),
    });
  }

  async listAccounts(_actor: Actor): Promise<AccountView[]> {
    return (await this.call('GET', '/service-accounts', accountList)).items;
  }

  getAccount(_actor: Actor, name: string): Promise<AccountView & { keys: KeyView[] }> {
    return this.call('GET', accountPath(name), accountWithKeys);
  }

  updateAccount(_actor: Actor, name: string, input: UpdateAccountInput): Promise<AccountView> {
    return this.call('PATCH', accountPath(name), accountView, {
      ...(input.role === undefined ? {} : { role: input.role }),
      ...(input.description === undefined ? {} : { description: input.description }),
      ...(input.disabled === undefined ? {} : { disabled: input.disabled }),
      ...rateLimitBody(input.rateLimit),
      ...(input.filters === undefined ? {} : { filters: input.filters }),
    });
  }

  async deleteAccount(_actor: Actor, name: string): Promise<void> {
    await this.call('DELETE', accountPath(name), undefined);
  }

  createKey(_actor: Actor, accountName: string, input: CreateKeyInput): Promise<IssuedKey> {
    return this.call('POST', `${accountPath(accountName)}/api-keys`, issuedKey, {
      description: input.description,
      ...(input.expiresAt === undefined ? {} : { expires_at: input.expiresAt }),
      ...(input.scopes === undefined ? {} : { scopes: input.scopes }),
    });
  }

  async listKeys(_actor: Actor, accountName: string): Promise<KeyView[]> {
    return (await this.call('GET', `${accountPath(accountName)}/api-keys`, keyList)).items;
  }

  /**
   * The admin API has no "expiring" query, so this reads what `keys list` reads and filters it
   * with KeyService's rule (still works, expires within the window), soonest first.
   */
  async listExpiringKeys(
    actor: Actor,
    accountName: string | undefined,
    withinSeconds: number,
  ): Promise<Array<KeyView & { account: string }>> {
    const names =
      accountName === undefined
        ? (await this.listAccounts(actor)).map((a) => a.name)
        : [accountName];
    const now = this.now();
    const found: Array<KeyView & { account: string }> = [];
    for (const name of names) {
      for (const key of await this.listKeys(actor, name)) {
        if (key.revoked_at === 0 && key.expires_at > now && key.expires_at - now <= withinSeconds)
          found.push({ account: name, ...key });
      }
    }
    return found.sort((a, b) => a.expires_at - b.expires_at || a.id.localeCompare(b.id));
  }

  async revokeKey(_actor: Actor, accountName: string, id: string): Promise<void> {
    await this.call('DELETE', keyPath(accountName, id), undefined);
  }

  rotateKey(
    _actor: Actor,
    accountName: string,
    id: string,
    graceSeconds?: number,
  ): Promise<IssuedKey> {
    return this.call(
      'POST',
      `${keyPath(accountName, id)}/rotate`,
      issuedKey,
      graceSeconds === undefined ? {} : { grace_seconds: graceSeconds },
    );
  }

  /**
   * `keygate apply` remotely: the parsed file goes to POST /apply, which validates it against
   * the server's roles and runs the same KeyService code (one atomic batch in its store).
   */
  async applyAccounts(
    _actor: Actor,
    desired: unknown,
    options: ApplyOptions = {},
  ): Promise<ApplyResult> {
    const query = `?dry_run=${options.dryRun === true}&prune=${options.prune === true}`;
    const answer = await this.call('POST', `/apply${query}`, applyAnswer, desired);
    // Rebuilt field by field: only what `keygate apply` prints, nothing else the server sent.
    const changes = answer.changes.map((c) => ({
      action: c.action,
      account: c.account,
      ...(c.key_id === undefined ? {} : { key_id: c.key_id }),
      ...(c.diff === undefined
        ? {}
        : { diff: c.diff.map((d) => ({ field: d.field, from: d.from, to: d.to })) }),
    }));
    const warnings = (answer.warnings ?? []).map((w) => clean(w, this.target.apiKey));
    return { changes, warnings };
  }

  /** One admin API call: the key goes only in a header, to this origin; no redirect is followed. */
  private async call<T>(
    method: string,
    path: string,
    schema: z.ZodType<T> | undefined,
    body?: unknown,
  ): Promise<T> {
    const { base, shown, apiKey } = this.target;
    // One deadline for the whole exchange. undici's headersTimeout and bodyTimeout are idle
    // timeouts (between bytes): a server trickling a byte now and then would hold the CLI for
    // ever without it.
    const deadline = new AbortController();
    const expired = new Promise<never>((_, reject) => {
      deadline.signal.addEventListener('abort', () => reject(new DeadlineExceeded()), {
        once: true,
      });
    });
    expired.catch(() => undefined);
    const timer = setTimeout(() => deadline.abort(), this.timeoutMs);
    try {
      let res: HttpExchange;
      try {
        res = await Promise.race([
          this.transport(`${base}${ADMIN_API_PREFIX}${path}`, {
            method,
            headers: {
              'x-api-key': apiKey,
              accept: 'application/json',
              ...(body === undefined ? {} : { 'content-type': 'application/json' }),
            },
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            timeoutMs: this.timeoutMs,
            signal: deadline.signal,
          }),
          expired,
        ]);
      } catch (err) {
        throw new RemoteError(
          scrub(`cannot reach keygate at ${shown}: ${whyUnreachable(err)}`, apiKey),
        );
      }
      let text: string;
      try {
        text = await readCapped(res, this.maxAnswerBytes, expired);
      } catch (err) {
        throw new RemoteError(
          scrub(`keygate at ${shown} answered ${res.status} but ${whyUnreadable(err)}`, apiKey),
        );
      }
      return parseAnswer(
        { status: res.status, contentType: res.header('content-type'), text },
        schema,
        { shown, apiKey },
      );
    } finally {
      clearTimeout(timer);
    }
  }
}

export interface RawAnswer {
  status: number;
  contentType: string | null;
  text: string;
}

/**
 * Turns one answer into a value, the same KeygateError local mode would throw (so exit codes
 * match), or a RemoteError. Pure, so every odd body can be tried on it; never echoes the key.
 */
export function parseAnswer<T>(
  answer: RawAnswer,
  schema: z.ZodType<T> | undefined,
  where: { shown: string; apiKey: string },
): T {
  const { status, contentType, text } = answer;
  const notApi = (what: string) =>
    new RemoteError(
      scrub(
        `keygate at ${where.shown} answered ${what}, not the admin API's JSON (is the URL keygate itself?)`,
        where.apiKey,
      ),
    );
  if (status >= 300 && status < 400) {
    throw new RemoteError(
      scrub(
        `keygate at ${where.shown} answered ${status}, a redirect; it is not followed, so the API key goes only to the URL given (give the final URL)`,
        where.apiKey,
      ),
    );
  }
  const json = isJson(contentType) ? tryParse(text) : undefined;
  if (status >= 200 && status < 300) {
    if (schema === undefined) {
      // A deletion answers 204 with no body; a body here would be some other server's.
      if (status === 204 || text === '') return undefined as T;
      throw notApi(`${status} with a body`);
    }
    if (json === undefined) throw notApi(`${status} ${describeType(contentType)}`);
    const parsed = schema.safeParse(json.value);
    if (!parsed.success) throw notApi(`${status} with JSON of another shape`);
    return parsed.data;
  }
  const error = json === undefined ? undefined : errorBody.safeParse(json.value);
  if (error?.success && isErrorCode(error.data.error)) {
    const message = clean(error.data.message ?? '', where.apiKey);
    return throwError(new KeygateError(error.data.error, message || error.data.error));
  }
  throw notApi(`HTTP ${status} ${describeType(contentType)}`);
}

/** zod's optional fields are `string | undefined`; AccountFilters leaves unset kinds out. */
function stripUndefined(f: { [K in keyof AccountFilters]?: string | undefined }): AccountFilters {
  const out: AccountFilters = {};
  if (f.allocation !== undefined) out.allocation = f.allocation;
  if (f.assets !== undefined) out.assets = f.assets;
  if (f.cloudCost !== undefined) out.cloudCost = f.cloudCost;
  return out;
}

function throwError(err: Error): never {
  throw err;
}

function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_STATUS, code);
}

function isJson(contentType: string | null): boolean {
  const type = contentType?.split(';')[0]?.trim().toLowerCase();
  return type === 'application/json';
}

function tryParse(text: string): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

function describeType(contentType: string | null): string {
  if (contentType === null) return 'without a content type';
  if (isJson(contentType)) return 'with a body that is not valid JSON';
  // Only the media type, cleaned: a header is the server's text.
  const type = (contentType.split(';')[0] ?? '')
    .trim()
    .slice(0, 60)
    .replace(/[^\w.+/-]/g, '?');
  return `with ${type || 'an empty content type'}`;
}

/** A server's message as shown: no control characters (terminal escapes), bounded, no key. */
function clean(message: string, apiKey: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  const flat = message.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  return scrub(flat.length > MAX_MESSAGE ? `${flat.slice(0, MAX_MESSAGE)}…` : flat, apiKey);
}

/** The key, wherever a server or a network error put it, is masked. */
function scrub(text: string, apiKey: string): string {
  return apiKey === '' ? text : text.replaceAll(apiKey, '***');
}

async function readCapped(
  res: HttpExchange,
  max: number,
  expired: Promise<never>,
): Promise<string> {
  const declared = Number(res.header('content-length') ?? 0);
  if (Number.isFinite(declared) && declared > max) {
    res.discard();
    throw new TooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const body = res.body[Symbol.asyncIterator]();
  try {
    for (;;) {
      // Each read races the call's deadline: a chunk that never comes ends the call too.
      const step = await Promise.race([body.next(), expired]);
      if (step.done) break;
      const chunk = step.value;
      size += chunk.byteLength;
      if (size > max) throw new TooLarge();
      chunks.push(chunk);
    }
  } catch (err) {
    res.discard();
    throw err;
  }
  // Invalid UTF-8 becomes U+FFFD and then fails the JSON or shape check: never a crash.
  return Buffer.concat(chunks).toString('utf8');
}

class TooLarge extends Error {}

/** The whole call took longer than the client's timeout. */
class DeadlineExceeded extends Error {}

function whyUnreadable(err: unknown): string {
  if (err instanceof TooLarge) return 'its answer is larger than this client accepts';
  if (isTimeout(err)) return 'its answer did not arrive in time';
  return 'its answer broke off';
}

/** The network's reason (ECONNREFUSED, ENOTFOUND, a timeout), never a stack. */
function whyUnreachable(err: unknown): string {
  if (isTimeout(err)) return 'no answer in time';
  // ECONNREFUSED, ENOTFOUND, EAI_AGAIN…: on the error itself (undici) or its cause (fetch).
  for (const e of [err, (err as { cause?: unknown } | null)?.cause]) {
    const code = (e as { code?: unknown } | null)?.code;
    if (typeof code === 'string') return code;
  }
  return err instanceof Error ? err.message : 'unknown error';
}

function isTimeout(err: unknown): boolean {
  if (err instanceof DeadlineExceeded) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'))
  );
}

/**
 * Path parameters are checked here as KeyService checks them: `..`, `/` or `%2f` in a name must
 * never become another endpoint of the URL, and a malformed one is the same not_found as local.
 */
function accountPath(name: string): string {
  if (!ACCOUNT_NAME.test(name)) throw missingAccount(name);
  return `/service-accounts/${name}`;
}

function keyPath(accountName: string, id: string): string {
  const account = accountPath(accountName);
  if (!isValidKeyId(id)) throw missingKey(accountName, id);
  return `${account}/api-keys/${id}`;
}

/** The admin API's `rate_limit` (null clears), or nothing when the input has none. */
function rateLimitBody(limit: AccountRateLimit | null | undefined): {
  rate_limit?: { requests: number; per_seconds: number } | null;
} {
  if (limit === undefined) return {};
  return {
    rate_limit: limit === null ? null : { requests: limit.requests, per_seconds: limit.perSeconds },
  };
}
