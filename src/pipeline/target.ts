import type { AdminTarget } from '../admin/admin-target.js';
import type { AuthzTarget } from '../authz/authz-target.js';
import type { RateDecision } from '../policy/rate-limiter.js';
import type { Route } from '../policy/route-table.js';

/** An upstream-bound request: the route rule that admitted it and the path the upstream sees. */
export interface ForwardTarget {
  readonly kind: 'forward';
  readonly route: Route;
  /** Base path + the request path (stripPrefix removed) + the query string. */
  readonly upstreamPath: string;
  /** The quota this request was counted against (RateLimit response fields); absent: none. */
  readonly rate?: RateDecision;
}

/**
 * Where an admitted request goes: a closed union, so every stage that switches on it is
 * checked to handle each kind (a new kind, e.g. `authz`, fails to compile until it is).
 */
export type Target = ForwardTarget | AdminTarget | AuthzTarget;
