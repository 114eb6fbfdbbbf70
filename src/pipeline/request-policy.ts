import type { Config } from '../config/schema.js';
import { RequestHeaderBuilder, trustedProxyList } from '../forward/request-headers.js';
import type { UpstreamCredential } from '../forward/upstream-credential.js';
import { RouteTable } from '../policy/route-table.js';
import type { PipelineDeps } from './handle-request.js';

/** The parts of the pipeline's deps a config reload replaces (see RELOADABLE_PATHS). */
export type RequestPolicy = Pick<
  PipelineDeps,
  'routes' | 'headers' | 'stripPrefix' | 'authzAnswer' | 'bodyIdleTimeoutMs'
>;

/** Builds them from a validated config: at start-up, and again on each accepted reload. */
export function requestPolicy(
  config: Readonly<Config>,
  credential: UpstreamCredential | undefined,
  /**
   * Identity header names this process sent before a reload renamed them. The upstream may
   * still trust an old name for a while (it is reconfigured after keygate), so a client's copy
   * of one is dropped like a current identity header, for the life of the process.
   */
  formerIdentityHeaders: readonly string[] = [],
): RequestPolicy {
  return {
    routes: new RouteTable(config.routes),
    headers: new RequestHeaderBuilder(
      config.identityHeaders,
      trustedProxyList(config.trustedProxies),
      config.trustedProxies.length > 0,
      [...(config.upstream?.dropHeaders ?? []), ...formerIdentityHeaders],
      credential,
    ),
    stripPrefix: config.upstream?.stripPrefix,
    authzAnswer: { identity: config.identityHeaders, cacheTtlMs: config.authz.cacheTtlMs },
    bodyIdleTimeoutMs: config.listen.bodyIdleTimeoutMs,
  };
}
