import type { ServerResponse } from 'node:http';
import type { IdentityHeaderNames } from '../forward/request-headers.js';
import type { Principal } from '../keys/principal.js';
import type { Route } from '../policy/route-table.js';

/**
 * An authz question that was allowed: the route rule the original request matched (what the
 * access line and metrics report). Nothing is forwarded; the answer is the identity.
 */
export interface AuthzTarget {
  readonly kind: 'authz';
  readonly route: Route;
}

export interface AuthzAnswerConfig {
  /** Names of the identity headers (config.identityHeaders), the same as proxy mode sets. */
  readonly identity: IdentityHeaderNames;
  /** authz.cacheTtl: how long the data plane may cache this allow. */
  readonly cacheTtlMs: number;
}

/**
 * Cache-Control for an allow. `private`: the answer is for this credential only. A TTL under one
 * second rounds down to no caching at all (`no-store`), never up: the bound on how long a
 * revoked key may still pass is what the operator configured, or less.
 */
export function authzCacheControl(cacheTtlMs: number): string {
  const seconds = Math.floor(cacheTtlMs / 1000);
  return seconds === 0 ? 'no-store' : `private, max-age=${seconds}`;
}

/**
 * The allow: 200, empty body, identity from the verified key only (never a header of the
 * request: nothing of it is echoed back but a safe X-Request-Id, which chooseRequestId vetted).
 */
export function answerAllow(
  res: ServerResponse,
  answer: AuthzAnswerConfig,
  principal: Principal,
  requestId: string,
): void {
  res.writeHead(200, [
    [answer.identity.account, principal.account],
    [answer.identity.keyId, principal.keyId],
    [answer.identity.role, principal.role],
    ['x-request-id', requestId],
    ['cache-control', authzCacheControl(answer.cacheTtlMs)],
    ['content-length', '0'],
  ]);
  res.end();
}
