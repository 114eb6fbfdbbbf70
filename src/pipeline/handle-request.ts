import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { ADMIN_API_PREFIX, handleAdmin } from '../admin/admin-api.js';
import { extractCredential } from '../credentials/extract.js';
import { KeygateError } from '../errors.js';
import { IdleGuardedBody } from '../forward/idle-guarded-body.js';
import type { RequestHeaderBuilder } from '../forward/request-headers.js';
import { chooseRequestId } from '../forward/request-headers.js';
import { responseHeaders, writeResponseHead } from '../forward/response-headers.js';
import type { UpstreamClient } from '../forward/upstream-client.js';
import { classifyUpstreamError, toUpstreamError } from '../forward/upstream-errors.js';
import { refuseMisplacedKeys } from '../keys/key-in-request.js';
import { AttributedKeyRefusal } from '../keys/key-refusal.js';
import type { KeyService } from '../keys/key-service.js';
import type { LastUsedRecorder } from '../keys/last-used.js';
import type { KeyVerifier } from '../keys/verifier.js';
import type { InflightLimit } from '../policy/inflight-limit.js';
import { normaliseTarget } from '../policy/normalise-path.js';
import type { RouteTable } from '../policy/route-table.js';
import type { AccessLog } from '../telemetry/access-log.js';
import type { Logger } from '../telemetry/logger.js';
import { scrubForLog } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import { checkFraming } from './framing.js';
import type { RequestContext } from './request-context.js';
import { asKeygateError, sendError } from './send-error.js';

/** Reserved for keygate's own API; never forwarded. */
export const ADMIN_PREFIX = '/_keygate';

export interface PipelineDeps {
  verifier: KeyVerifier;
  routes: RouteTable;
  headers: RequestHeaderBuilder;
  upstream: UpstreamClient;
  logger: Logger;
  /** Path prefix of the upstream URL, prepended after stripPrefix is removed. */
  upstreamBasePath: string;
  stripPrefix: string | undefined;
  keyPrefix: string;
  keys: KeyService;
  lastUsed: LastUsedRecorder;
  metrics: Metrics;
  /** The one access line per request. */
  accessLog: AccessLog;
  /** While draining, responses close their connection so clients reconnect elsewhere. */
  isDraining: () => boolean;
  /** Per-account bound on requests in flight (listen.maxInflightPerAccount). */
  inflight: InflightLimit;
  /** listen.bodyIdleTimeout: longest silence from a client while its body is being read. */
  bodyIdleTimeoutMs: number;
}

/**
 * The request path, stage by stage: framing → credentials → key verification → path
 * normalisation and route policy → per-account in-flight bound → forward → access log.
 * `expectsContinue` is set for `Expect: 100-continue` requests (the server's checkContinue
 * event): 100 Continue is sent only once the request is admitted and the body is wanted.
 */
export function createRequestHandler(deps: PipelineDeps) {
  const { verifier, routes, logger } = deps;

  return async function handleRequest(
    req: IncomingMessage,
    res: ServerResponse,
    expectsContinue = false,
  ): Promise<void> {
    const ctx: RequestContext = {
      requestId: chooseRequestId(req.rawHeaders),
      startedAt: performance.now(),
      remoteAddress: req.socket.remoteAddress ?? '',
    };
    deps.metrics.inflight.inc();
    res.once('close', () => observe(deps, req, res, ctx));
    if (deps.isDraining()) res.setHeader('connection', 'close');
    try {
      const framing = checkFraming({
        method: req.method ?? 'GET',
        httpVersion: req.httpVersion,
        rawHeaders: req.rawHeaders,
      });
      // Before the credentials: a key in the URL or a forwarded header is refused whatever
      // the credential headers say (and whether or not they hold a valid key).
      refuseMisplacedKeys(req.url ?? '', req.rawHeaders, deps.keyPrefix);
      const credential = extractCredential(req.rawHeaders);
      ctx.credentialSource = credential.source;
      const principal = await verifier.verify(credential.key, {
        clientAddress: deps.headers.clientAddress(req.rawHeaders, ctx.remoteAddress),
      });
      ctx.principal = principal;
      deps.lastUsed.mark(principal.keyId);

      const target = normaliseTarget(req.url ?? '');
      const method = req.method ?? 'GET';
      if (target.path === ADMIN_PREFIX || target.path.startsWith(`${ADMIN_PREFIX}/`)) {
        ctx.route = 'admin';
        if (!principal.scopes.has('admin')) {
          throw new KeygateError('insufficient_scope', 'the keygate API needs the admin scope');
        }
        ctx.decision = 'allow';
        ctx.auth = 'allow';
        if (target.path !== ADMIN_API_PREFIX && !target.path.startsWith(`${ADMIN_API_PREFIX}/`)) {
          throw new KeygateError('not_found', 'no such keygate API endpoint');
        }
        if (expectsContinue) res.writeContinue();
        await handleAdmin(req, res, target.path, principal, deps.keys, ctx.requestId);
        return;
      }
      const route = routes.require(method, target.path);
      ctx.route = route.name; // set before the scope check, so a refusal is counted on its rule
      routes.checkScopes(principal, route);
      // 'close' fires once however the response ends (finished, client gone, error, timeout).
      res.once('close', deps.inflight.acquire(principal.account));
      ctx.decision = 'allow';
      ctx.auth = 'allow';
      await forward(deps, req, res, ctx, method, upstreamPath(deps, target.path) + target.query, {
        hasBody: framing.hasBody,
        expectsContinue,
      });
    } catch (err) {
      const error = asKeygateError(err);
      ctx.errorCode = error.code;
      if (error instanceof AttributedKeyRefusal)
        ctx.refusedKey = { keyId: error.keyId, account: error.account };
      // Refused before the request was allowed: that refusal is the auth decision.
      ctx.auth ??= error.code;
      ctx.decision ??= error.status >= 500 ? 'error' : 'deny';
      if (error.code === 'internal_error') {
        logger.error({ request_id: ctx.requestId, err: error.cause }, 'request failed');
      }
      sendError(req, res, error, ctx.requestId);
    }
  };
}

function upstreamPath(deps: PipelineDeps, path: string): string {
  let rest = path;
  const strip = deps.stripPrefix;
  if (strip !== undefined && (path === strip || path.startsWith(`${strip}/`))) {
    rest = path.slice(strip.length) || '/';
  }
  return deps.upstreamBasePath + rest;
}

async function forward(
  deps: PipelineDeps,
  req: IncomingMessage,
  res: ServerResponse,
  ctx: RequestContext,
  method: string,
  path: string,
  body: { hasBody: boolean; expectsContinue: boolean },
): Promise<void> {
  const abort = new AbortController();
  let bodyTimedOut = false;
  // A client that goes away must release the upstream connection too.
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const headers = deps.headers.build({
    rawHeaders: req.rawHeaders,
    remoteAddress: ctx.remoteAddress,
    encrypted: (req.socket as TLSSocket).encrypted === true,
    requestId: ctx.requestId,
    principal: ctx.principal as NonNullable<RequestContext['principal']>,
  });
  const guarded = body.hasBody
    ? new IdleGuardedBody(req, {
        idleMs: deps.bodyIdleTimeoutMs,
        // Only now, with the request admitted and an upstream connection asking for the body.
        ...(body.expectsContinue ? { onFirstRead: () => res.writeContinue() } : {}),
        onIdle: () => {
          bodyTimedOut = true;
          abort.abort(); // frees the upstream connection the body was holding
        },
      })
    : null;
  const started = performance.now();
  try {
    await deps.upstream.forward(
      { method, path, headers, body: guarded, signal: abort.signal },
      (statusCode, upstreamHeaders) => {
        ctx.upstreamStatus = statusCode;
        ctx.upstreamMs = performance.now() - started;
        writeResponseHead(res, statusCode, responseHeaders(upstreamHeaders, ctx.requestId));
        return res;
      },
    );
  } catch (err) {
    if (bodyTimedOut) {
      deps.metrics.upstreamErrors.inc({ kind: 'body_timeout' });
      throw new KeygateError('body_timeout', 'the request body stalled; send it without pauses');
    }
    if (abort.signal.aborted) return; // the client left; nobody to answer
    ctx.decision = 'error';
    if (err instanceof KeygateError) {
      // Refused before reaching the upstream: the bounded queue is full.
      if (err.code === 'upstream_saturated') deps.metrics.upstreamErrors.inc({ kind: 'saturated' });
      throw err;
    }
    const kind = classifyUpstreamError(err);
    deps.metrics.upstreamErrors.inc({ kind });
    throw toUpstreamError(kind, err);
  } finally {
    // An upstream that answered without reading the whole body leaves no timer behind.
    guarded?.destroy();
  }
}

/** The last stage: one access-log line and the request's metrics, when the response is done. */
function observe(
  deps: PipelineDeps,
  req: IncomingMessage,
  res: ServerResponse,
  ctx: RequestContext,
): void {
  const { metrics } = deps;
  const seconds = (performance.now() - ctx.startedAt) / 1000;
  const route = ctx.route ?? 'none';
  const status = res.writableFinished ? res.statusCode : 499;
  metrics.inflight.dec();
  metrics.requests.inc({
    route,
    method: Metrics.method(req.method),
    code: String(status),
    account: metrics.accountLabel(ctx.principal?.account ?? ctx.refusedKey?.account),
  });
  metrics.requestDuration.observe({ route }, seconds);
  if (ctx.upstreamMs !== undefined)
    metrics.upstreamDuration.observe({ route }, ctx.upstreamMs / 1000);
  if (ctx.auth !== undefined) metrics.authDecisions.inc({ result: ctx.auth });
  logAccess(deps.accessLog, req, status, ctx);
}

function logAccess(
  accessLog: AccessLog,
  req: IncomingMessage,
  status: number,
  ctx: RequestContext,
): void {
  const rawUrl = req.url ?? '';
  const q = rawUrl.indexOf('?');
  accessLog.write({
    request_id: ctx.requestId,
    method: req.method,
    // Query strings can carry filter values users consider private; only the path is logged.
    path: scrubForLog(q === -1 ? rawUrl : rawUrl.slice(0, q)),
    route: ctx.route ?? 'none',
    status,
    duration_ms: Math.round((performance.now() - ctx.startedAt) * 1000) / 1000,
    account: ctx.principal?.account ?? ctx.refusedKey?.account,
    key_id: ctx.principal?.keyId ?? ctx.refusedKey?.keyId,
    // Named by an expired/revoked/disabled refusal, which runs no argon2: a claim, not proof.
    key_proven: ctx.refusedKey === undefined ? undefined : false,
    credential: ctx.credentialSource,
    decision: ctx.decision ?? 'error',
    error: ctx.errorCode,
    upstream_status: ctx.upstreamStatus,
    upstream_ms:
      ctx.upstreamMs === undefined ? undefined : Math.round(ctx.upstreamMs * 1000) / 1000,
    remote: ctx.remoteAddress,
  });
}
