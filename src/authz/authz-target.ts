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
 * The credential header names keygate reads (src/credentials/extract.ts), as Envoy's
 * `x-envoy-auth-headers-to-remove` value: on a 200 from an ext_authz HTTP service, Envoy (and so
 * Istio's sidecars and gateways) deletes these from the request it forwards
 * (source/extensions/filters/common/ext_authz/ext_authz_http_impl.cc). The key has done its
 * work once keygate answered; the upstream must never see it. A fixed list, never built from the
 * request. Other data planes ignore the header (they copy only the identity headers they name).
 */
export const ENVOY_HEADERS_TO_REMOVE = 'x-api-key, authorization';

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
    ['x-envoy-auth-headers-to-remove', ENVOY_HEADERS_TO_REMOVE],
    ['content-length', '0'],
  ]);
  res.end();
}
