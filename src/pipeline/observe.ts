import type { AccessLog } from '../telemetry/access-log.js';
import { scrubForLog } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { type Outcome, routeOf, verdictOf } from './outcome.js';

/** The last stage: one access line and the request's metrics, from the request's outcome. */
export function observe(outcome: Outcome, accessLog: AccessLog, metrics: Metrics): void {
  const a = outcome.admission;
  const verdict = verdictOf(outcome);
  const route = routeOf(outcome);
  const refusedKey = a.admitted ? undefined : a.refusedKey;
  const account = a.principal?.account ?? refusedKey?.account;
  const upstreamMs = outcome.dispatched?.upstreamMs;
  metrics.requestFinished({
    route,
    method: outcome.method,
    status: outcome.status,
    account,
    seconds: outcome.durationMs / 1000,
    upstreamSeconds: upstreamMs === undefined ? undefined : upstreamMs / 1000,
    auth: verdict.auth,
  });
  const url = outcome.url;
  const q = url.indexOf('?');
  accessLog.write({
    request_id: outcome.requestId,
    method: outcome.method,
    // Query strings can carry filter values users consider private; only the path is logged.
    path: scrubForLog(q === -1 ? url : url.slice(0, q)),
    route,
    status: outcome.status,
    duration_ms: Math.round(outcome.durationMs * 1000) / 1000,
    account,
    key_id: a.principal?.keyId ?? refusedKey?.keyId,
    // Named by an expired/revoked/disabled refusal, which runs no argon2: a claim, not proof.
    key_proven: refusedKey === undefined ? undefined : false,
    credential: a.credential,
    decision: verdict.decision,
    error: verdict.error,
    upstream_status: outcome.dispatched?.upstreamStatus,
    upstream_ms: upstreamMs === undefined ? undefined : Math.round(upstreamMs * 1000) / 1000,
    remote: outcome.remoteAddress,
  });
}
