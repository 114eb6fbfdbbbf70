/**
 * Which client headers never reach the upstream. Names are compared canonically (lower case,
 * "_" read as "-"), because servers behind keygate differ: CGI-style frameworks map both
 * `X-Foo` and `X_Foo` to `HTTP_X_FOO`, so a client's `X_Keygate_Role` could shadow keygate's.
 *
 * Whole families are dropped, not a list of known members: a proxy or framework that trusts
 * `X-Forwarded-Prefix` or `X-Envoy-Original-Path` today will trust some new member tomorrow.
 */

import { canonicalHeaderName } from '../shared/header-name.js';

// biome-ignore format: a list of names reads better packed
const DROPPED_NAMES = [
  // Hop-by-hop (RFC 9110 §7.6.1) and framing: undici sets its own.
  'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect',
  // keygate asserts these; undici sets Host from the upstream URL.
  'host', 'x-request-id',
  // The client's credentials are for keygate only.
  'x-api-key', 'authorization', 'cookie',
  // Method overrides: the route was authorised for the request's own method.
  'x-http-method-override', 'x-http-method', 'x-method-override',
  // Origin and path claims that proxies and frameworks honour.
  'forwarded', 'x-real-ip', 'x-rewrite-url', 'true-client-ip', 'x-client-ip',
  'x-cluster-client-ip', 'cf-connecting-ip', 'fastly-client-ip',
];

/** Prefixes of whole families; `x-keygate-` is keygate's namespace whatever the identity names. */
const DROPPED_PREFIXES = ['proxy-', 'x-forwarded-', 'x-original-', 'x-envoy-', 'x-keygate-'];

export class HeaderDropRule {
  private readonly names: ReadonlySet<string>;
  private readonly prefixes: readonly string[];

  /**
   * @param identityNames the headers keygate sets itself and the client may never send: the
   *   configured identity header names and the upstream credential's (dropped whatever they are)
   * @param extra `upstream.dropHeaders`: names, or prefixes ending in "*"
   */
  constructor(identityNames: readonly string[], extra: readonly string[] = []) {
    const names = new Set(DROPPED_NAMES);
    const prefixes = [...DROPPED_PREFIXES];
    for (const name of identityNames) names.add(canonicalHeaderName(name));
    for (const entry of extra) {
      if (entry.endsWith('*')) prefixes.push(canonicalHeaderName(entry.slice(0, -1)));
      else names.add(canonicalHeaderName(entry));
    }
    this.names = names;
    this.prefixes = prefixes;
  }

  /** True when a header whose canonical name is `canonical` must not be forwarded. */
  drops(canonical: string): boolean {
    if (this.names.has(canonical)) return true;
    for (const prefix of this.prefixes) if (canonical.startsWith(prefix)) return true;
    return false;
  }
}
