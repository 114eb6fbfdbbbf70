import type { IncomingMessage, ServerResponse } from 'node:http';
import { chooseRequestId } from '../forward/request-headers.js';
import { UpstreamCancel } from '../forward/upstream-cancel.js';
import type { AccessLog } from '../telemetry/access-log.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { Admission, Refusal } from './admission.js';
import { type AdmitDeps, admit } from './admit.js';
import { type DispatchDeps, dispatch, type UpstreamAbort } from './dispatch.js';
import { observe } from './observe.js';
import type { Dispatched } from './outcome.js';
import { ReloadablePolicy } from './reloadable-policy.js';
import { asKeygateError, sendError } from './send-error.js';

export interface PipelineDeps extends AdmitDeps, DispatchDeps {
  logger: Logger;
  metrics: Metrics;
  /** The one access line per request. */
  accessLog: AccessLog;
  /** While draining, responses close their connection so clients reconnect elsewhere. */
  isDraining: () => boolean;
  /** Per-key request counts (KeyUseCounter): a map update, written off the request path. */
  keyUses: { count(keyId: string): void };
}

export interface RequestPipeline {
  /**
   * One request, top to bottom: admit → dispatch (to the upstream or the admin API) → observe.
   * `expectsContinue` is set for `Expect: 100-continue` requests (the server's checkContinue
   * event): 100 Continue is sent only once the request is admitted and the body is wanted.
   */
  handle(req: IncomingMessage, res: ServerResponse, expectsContinue?: boolean): Promise<void>;
  /** Requests begun and not yet observed (what a graceful shutdown waits for). */
  readonly inFlight: number;
}

/**
 * `policy`: fixed deps, or a holder a config reload swaps; read once per request, so a request
 * runs start to end under one policy (see ReloadablePolicy).
 */
export function createRequestHandler(
  policy: PipelineDeps | ReloadablePolicy<PipelineDeps>,
): RequestPipeline {
  let inFlight = 0;
  const finished = () => {
    inFlight--;
  };

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    expectsContinue = false,
  ): Promise<void> {
    const deps = policy instanceof ReloadablePolicy ? policy.current : policy;
    inFlight++;
    deps.metrics.requestStarted();
    const exchange = new Exchange(deps, req, res, finished);
    if (deps.isDraining()) res.setHeader('connection', 'close');

    const admitting = admit(deps, req, exchange.remoteAddress, expectsContinue);
    // A refusal decided without I/O is a plain value: answered in this same tick.
    const admission = admitting instanceof Promise ? await admitting : admitting;
    if (!admission.admitted) {
      answerWithError(deps, req, res, admission.error, exchange.requestId);
      exchange.settle(admission, undefined);
      return;
    }
    // Counted once admitted (forwarded, or answered by the admin API or authz), whatever the
    // answer: refusals after verification (scope, route, limits) are not uses of the key and
    // are visible, by code, in keygate_requests_total and the access log.
    deps.keyUses.count(admission.principal.keyId);
    if (!exchange.hold(admission.release)) {
      // The client left while it was being admitted: there is nobody to dispatch for.
      exchange.settle(admission, LEFT);
      return;
    }
    let dispatched: Dispatched;
    try {
      dispatched = await dispatch(
        deps,
        admission,
        req,
        res,
        exchange.requestId,
        exchange.remoteAddress,
        exchange,
      );
    } catch (err) {
      // Every target reports its outcome as a value; a throw here is a bug. Fail closed all
      // the same: a 500 for the client, the request observed, its slot freed.
      dispatched = { ...LEFT, error: asKeygateError(err) };
    }
    if (dispatched.error !== undefined) {
      answerWithError(deps, req, res, dispatched.error, exchange.requestId);
    }
    exchange.settle(admission, dispatched);
  }

  return {
    handle,
    get inFlight() {
      return inFlight;
    },
  };
}

const LEFT: Dispatched = {
  error: undefined,
  upstreamFailed: false,
  upstreamStatus: undefined,
  upstreamMs: undefined,
};

function answerWithError(
  deps: PipelineDeps,
  req: IncomingMessage,
  res: ServerResponse,
  error: Refusal['error'],
  requestId: string,
): void {
  if (error.code === 'internal_error') {
    deps.logger.error({ request_id: requestId, err: error.cause }, 'request failed');
  }
  sendError(req, res, error, requestId);
}

/**
 * One request between its arrival and its observation. Its single 'close' listener does all
 * the end-of-request work: abort the upstream request if the client left, free the account's
 * in-flight slot, and, once the stages have also settled, observe the outcome. The stages hand
 * it their results once each (`hold`, `settle`); nothing else writes to it.
 */
class Exchange implements UpstreamAbort {
  readonly requestId: string;
  /** Read at the start: the socket may be detached by the time the response closes. */
  readonly remoteAddress: string;
  private readonly startedAt = performance.now();
  private abort: UpstreamCancel | undefined;
  private release: (() => void) | undefined;
  /** Set at 'close': the status sent (499 if unfinished) and how long the request took. */
  private closed: { status: number; durationMs: number } | undefined;
  private outcome:
    | { admission: Admission | Refusal; dispatched: Dispatched | undefined }
    | undefined;

  constructor(
    private readonly deps: PipelineDeps,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly finished: () => void,
  ) {
    this.requestId = chooseRequestId(req.rawHeaders);
    this.remoteAddress = req.socket.remoteAddress ?? '';
    // 'close' fires once however the response ends (finished, client gone, error, timeout).
    res.once('close', this.onClose);
  }

  upstreamAbort(): UpstreamCancel {
    this.abort ??= new UpstreamCancel();
    return this.abort;
  }

  /** Holds the in-flight slot until 'close'; false (slot freed) if the response already closed. */
  hold(release: (() => void) | undefined): boolean {
    if (this.closed !== undefined) {
      release?.();
      return false;
    }
    this.release = release;
    return true;
  }

  settle(admission: Admission | Refusal, dispatched: Dispatched | undefined): void {
    const outcome = { admission, dispatched };
    this.outcome = outcome;
    if (this.closed !== undefined) this.observe(this.closed, outcome);
  }

  private readonly onClose = (): void => {
    const res = this.res;
    const done = res.writableFinished;
    // A client that goes away must release the upstream connection too.
    if (!done) this.abort?.abort();
    this.release?.();
    const closed = {
      status: done ? res.statusCode : 499,
      durationMs: performance.now() - this.startedAt,
    };
    this.closed = closed;
    if (this.outcome !== undefined) this.observe(closed, this.outcome);
  };

  private observe(
    closed: NonNullable<Exchange['closed']>,
    outcome: NonNullable<Exchange['outcome']>,
  ): void {
    this.finished();
    observe(
      {
        requestId: this.requestId,
        method: this.req.method,
        url: this.req.url ?? '',
        remoteAddress: this.remoteAddress,
        admission: outcome.admission,
        dispatched: outcome.dispatched,
        status: closed.status,
        durationMs: closed.durationMs,
      },
      this.deps.accessLog,
      this.deps.metrics,
    );
  }
}
