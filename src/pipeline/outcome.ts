import type { KeygateError } from '../errors.js';
import type { Admission, Refusal } from './admission.js';

/** What dispatching an admitted request came to. */
export interface Dispatched {
  /** What the client was answered with, if not the target's own answer. */
  readonly error: KeygateError | undefined;
  /** The upstream gave no answer: the request was allowed but ended in error. */
  readonly upstreamFailed: boolean;
  readonly upstreamStatus: number | undefined;
  readonly upstreamMs: number | undefined;
}

/**
 * Everything the last stage reports about one request, as one value: its admission (or
 * refusal), what dispatch came to (absent when refused), and how the response ended.
 */
export interface Outcome {
  readonly requestId: string;
  readonly method: string | undefined;
  /** The request target as received (observe logs only its path, scrubbed). */
  readonly url: string;
  readonly remoteAddress: string;
  readonly admission: Admission | Refusal;
  readonly dispatched: Dispatched | undefined;
  /** The status sent, or 499 when the client left before the response was finished. */
  readonly status: number;
  readonly durationMs: number;
}

export type Decision = 'allow' | 'deny' | 'error';

/**
 * The request's verdict, one reading of the outcome for the access line and the metrics:
 * `decision` (allow/deny/error), `auth` ("allow" or the admission refusal's code) and `error`
 * (the code the client was answered with, if any).
 */
export interface Verdict {
  readonly decision: Decision;
  readonly auth: string;
  readonly error: string | undefined;
}

export function verdictOf(outcome: Outcome): Verdict {
  const a = outcome.admission;
  if (!a.admitted) {
    // Refused before the request was allowed: that refusal is the auth decision.
    const code = a.error.code;
    return { decision: a.error.status >= 500 ? 'error' : 'deny', auth: code, error: code };
  }
  const d = outcome.dispatched;
  // Allowed, but answered with a 5xx (no upstream answer, or keygate failed): an error, not
  // an allow. A 4xx after admission (a stalled body: 408) is still the client's doing.
  const failed = d !== undefined && (d.upstreamFailed || (d.error?.status ?? 0) >= 500);
  return { decision: failed ? 'error' : 'allow', auth: 'allow', error: d?.error?.code };
}

export function routeOf(outcome: Outcome): string {
  const a = outcome.admission;
  if (!a.admitted) return a.route ?? 'none';
  // An authz answer is counted on the rule the original request matched, as proxy mode would.
  return a.target.kind === 'admin' ? a.target.kind : a.target.route.name;
}
