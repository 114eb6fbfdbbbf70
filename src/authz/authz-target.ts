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
 * nginx's cache lifetime for an allow, in whole seconds like Cache-Control's max-age; absent at
 * 0. nginx will not cache `Cache-Control: private` at all, so the shipped caching snippet
 * (deploy/authz/nginx/keygate-authz-cache.conf) ignores Cache-Control and goes by this header
 * alone: then only an answer that carries it, an allow, is ever cached, and for no longer than
 * authz.cacheTtl. Refusals never carry it.
 */
export function authzAccelExpires(cacheTtlMs: number): string | undefined {
  const seconds = Math.floor(cacheTtlMs / 1000);
  return seconds === 0 ? undefined : String(seconds);
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
  const headers: Array<[string, string]> = [
    [answer.identity.account, principal.account],
    [answer.identity.keyId, principal.keyId],
    [answer.identity.role, principal.role],
    ['x-request-id', requestId],
    ['cache-control', authzCacheControl(answer.cacheTtlMs)],
    ['x-envoy-auth-headers-to-remove', ENVOY_HEADERS_TO_REMOVE],
    ['content-length', '0'],
  ];
  const accelExpires = authzAccelExpires(answer.cacheTtlMs);
  if (accelExpires !== undefined) headers.push(['x-accel-expires', accelExpires]);
  res.writeHead(200, headers);
  res.end();
}
