import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { KeygateError } from '../errors.js';
import type { Principal } from '../keys/principal.js';
import type { ForwardTarget } from '../pipeline/target.js';
import { withRateLimitHeaders } from '../policy/rate-limit-gate.js';
import type { Metrics } from '../telemetry/metrics.js';
import { IdleGuardedBody } from './idle-guarded-body.js';
import type { RequestHeaderBuilder } from './request-headers.js';
import { responseHeaders, writeResponseHead } from './response-headers.js';
import type { UpstreamCancel } from './upstream-cancel.js';
import type { UpstreamClient } from './upstream-client.js';
import { classifyUpstreamError, toUpstreamError } from './upstream-errors.js';

export interface ForwardDeps {
  headers: RequestHeaderBuilder;
  upstream: UpstreamClient;
  metrics: Metrics;
  /** listen.bodyIdleTimeout: longest silence from a client while its body is being read. */
  bodyIdleTimeoutMs: number;
}

/** What forwarding one request came to; never thrown, so the caller reads it as a value. */
export interface Forwarded {
  readonly upstreamStatus: number | undefined;
  /** Until the upstream answered with headers. */
  readonly upstreamMs: number | undefined;
  /** What to answer the client with, if anything went wrong (undefined: answered, or client gone). */
  readonly error: KeygateError | undefined;
  /** No answer from the upstream (or refused at its bounded queue): decision "error". */
  readonly upstreamFailed: boolean;
}

export interface ForwardRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly target: ForwardTarget;
  readonly principal: Principal;
  readonly requestId: string;
  readonly remoteAddress: string;
  readonly hasBody: boolean;
  readonly expectsContinue: boolean;
  /** Aborted by the request's end-of-request listener when the client goes away. */
  readonly abort: UpstreamCancel;
}

/**
 * Sends an admitted request to the upstream with the identity headers, streaming the body
 * through an idle guard, and the upstream's answer back. A client that leaves aborts the
 * upstream request (through `abort`), which frees its upstream connection.
 */
export async function forwardRequest(deps: ForwardDeps, r: ForwardRequest): Promise<Forwarded> {
  const { req, res, abort } = r;
  let bodyTimedOut = false;
  let upstreamStatus: number | undefined;
  let upstreamMs: number | undefined;
  const headers = deps.headers.build({
    rawHeaders: req.rawHeaders,
    remoteAddress: r.remoteAddress,
    encrypted: (req.socket as TLSSocket).encrypted === true,
    requestId: r.requestId,
    principal: r.principal,
  });
  const guarded = r.hasBody
    ? new IdleGuardedBody(req, {
        idleMs: deps.bodyIdleTimeoutMs,
        // Only now, with the request admitted and an upstream connection asking for the body.
        ...(r.expectsContinue ? { onFirstRead: () => res.writeContinue() } : {}),
        onIdle: () => {
          bodyTimedOut = true;
          abort.abort(); // frees the upstream connection the body was holding
        },
      })
    : null;
  const started = performance.now();
  try {
    await deps.upstream.forward(
      {
        method: req.method ?? 'GET',
        path: r.target.upstreamPath,
        headers,
        body: guarded,
        signal: abort,
      },
      (statusCode, upstreamHeaders) => {
        upstreamStatus = statusCode;
        upstreamMs = performance.now() - started;
        const head = responseHeaders(upstreamHeaders, r.requestId);
        writeResponseHead(res, statusCode, withRateLimitHeaders(head, r.target.rate));
        return res;
      },
    );
    return { upstreamStatus, upstreamMs, error: undefined, upstreamFailed: false };
  } catch (err) {
    if (bodyTimedOut) {
      deps.metrics.upstreamFailed('body_timeout');
      const error = new KeygateError(
        'body_timeout',
        'the request body stalled; send it without pauses',
      );
      return { upstreamStatus, upstreamMs, error, upstreamFailed: false };
    }
    // The client left; nobody to answer.
    if (abort.aborted)
      return { upstreamStatus, upstreamMs, error: undefined, upstreamFailed: false };
    if (err instanceof KeygateError) {
      // Refused before reaching the upstream: the bounded queue is full.
      if (err.code === 'upstream_saturated') deps.metrics.upstreamFailed('saturated');
      return { upstreamStatus, upstreamMs, error: err, upstreamFailed: true };
    }
    const kind = classifyUpstreamError(err);
    deps.metrics.upstreamFailed(kind);
    return { upstreamStatus, upstreamMs, error: toUpstreamError(kind, err), upstreamFailed: true };
  } finally {
    // An upstream that answered without reading the whole body leaves no timer behind.
    guarded?.destroy();
  }
}
