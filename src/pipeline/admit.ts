import type { IncomingMessage } from 'node:http';
import { ADMIN_ROUTE_NAME, admitAdmin } from '../admin/admin-target.js';
import {
  isAuthzUrl,
  type OriginalRequest,
  parseOriginalRequest,
  refuseKeysInOriginalUrl,
} from '../authz/original-request.js';
import type { Mode } from '../config/schema.js';
import { type CredentialSource, extractCredential } from '../credentials/extract.js';
import { KeygateError } from '../errors.js';
import type { RequestHeaderBuilder } from '../forward/request-headers.js';
import { refuseMisplacedKeys } from '../keys/key-in-request.js';
import { AttributedKeyRefusal } from '../keys/key-refusal.js';
import type { LastUsedRecorder } from '../keys/last-used.js';
import type { Principal } from '../keys/principal.js';
import type { KeyVerifier } from '../keys/verifier.js';
import { refuseFiltered, scopedQuery } from '../policy/filter-scope.js';
import type { InflightLimit } from '../policy/inflight-limit.js';
import { normaliseTarget } from '../policy/normalise-path.js';
import type { RateLimitGate } from '../policy/rate-limit-gate.js';
import type { RouteTable } from '../policy/route-table.js';
import { isUnder, KEYGATE_PREFIX } from '../shared/keygate-prefix.js';
import type { Admission, Refusal } from './admission.js';
import { checkFraming } from './framing.js';
import { asKeygateError } from './send-error.js';
import type { Target } from './target.js';

export interface AdmitDeps {
  verifier: KeyVerifier;
  routes: RouteTable;
  headers: RequestHeaderBuilder;
  keyPrefix: string;
  lastUsed: LastUsedRecorder;
  /** Per-account bound on requests in flight (listen.maxInflightPerAccount). */
  inflight: InflightLimit;
  /** Per-account quotas (DESIGN §16) of forwarded requests. */
  rateLimits: RateLimitGate;
  /** Path prefix of the upstream URL, prepended after stripPrefix is removed. */
  upstreamBasePath: string;
  stripPrefix: string | undefined;
  /** proxy: forward; authz: answer /_keygate/authz only, forward nothing; both (DESIGN §13). */
  mode: Mode;
}

/**
 * The first stage: framing → misplaced keys → credentials → key verification → path
 * normalisation → target (admin API or a route rule, with its scope check) → per-account
 * in-flight bound. Checks throw inside; the catches below turn them into a Refusal that
 * carries what was learned before the refusal (credential source, principal or the key a
 * refusal named, route), which the access line and the request counter report.
 *
 * What needs no I/O is decided synchronously, and such a refusal is returned as a plain value:
 * it is answered in the same tick, before node:http can answer a malformed body on its own
 * (bodies-and-framing.test.ts), and a cheap refusal costs no promise.
 */
export function admit(
  deps: AdmitDeps,
  req: IncomingMessage,
  remoteAddress: string,
  expectsContinue: boolean,
): Refusal | Promise<Admission | Refusal> {
  let credential: CredentialSource | undefined;
  try {
    const framing = checkFraming({
      method: req.method ?? 'GET',
      httpVersion: req.httpVersion,
      rawHeaders: req.rawHeaders,
    });
    const url = req.url ?? '';
    // Only outside proxy mode does /_keygate/authz exist; in proxy mode it is the admin API's.
    const asksAuthz = deps.mode !== 'proxy' && isAuthzUrl(url);
    // A key in the original URL a data plane names is a key in the URL: the same refusal.
    if (asksAuthz) refuseKeysInOriginalUrl(req.rawHeaders, deps.keyPrefix);
    // Before the credentials: a key in the URL or a forwarded header is refused whatever
    // the credential headers say (and whether or not they hold a valid key).
    refuseMisplacedKeys(url, req.rawHeaders, deps.keyPrefix);
    if (deps.mode === 'authz' && !asksAuthz && !isUnder(pathOf(url), KEYGATE_PREFIX)) {
      // Nothing is forwarded in authz mode; refused before any argon2 is spent on it.
      throw new KeygateError('not_found', 'keygate runs in authz mode: nothing is proxied');
    }
    const original = asksAuthz
      ? parseOriginalRequest(req.method ?? 'GET', url, req.rawHeaders)
      : undefined;
    const presented = extractCredential(req.rawHeaders);
    credential = presented.source;
    return admitKey(
      deps,
      req,
      remoteAddress,
      presented.key,
      credential,
      framing.hasBody,
      expectsContinue,
      original,
    );
  } catch (err) {
    return refusal(err, credential, undefined, undefined);
  }
}

async function admitKey(
  deps: AdmitDeps,
  req: IncomingMessage,
  remoteAddress: string,
  key: string,
  credential: CredentialSource,
  hasBody: boolean,
  expectsContinue: boolean,
  original: OriginalRequest | undefined,
): Promise<Admission | Refusal> {
  let principal: Principal | undefined;
  let route: string | undefined;
  try {
    principal = await deps.verifier.verify(key, {
      clientAddress: deps.headers.clientAddress(req.rawHeaders, remoteAddress),
    });
    deps.lastUsed.mark(principal.keyId);

    let target: Target;
    let release: (() => void) | undefined;
    if (original !== undefined) {
      // The same normalisation, route table and scope check as a proxied request; the data
      // plane carries the request, so no in-flight slot is held for it here.
      const path = normaliseTarget(original.target);
      const rule = deps.routes.require(original.method, path.path);
      route = rule.name;
      deps.routes.checkScopes(principal, rule);
      refuseFiltered(principal, 'authz');
      return {
        admitted: true,
        credential,
        principal,
        target: { kind: 'authz', route: rule },
        hasBody,
        expectsContinue,
        release: undefined,
      };
    }
    const path = normaliseTarget(req.url ?? '');
    if (isUnder(path.path, KEYGATE_PREFIX)) {
      route = ADMIN_ROUTE_NAME;
      refuseFiltered(principal, 'admin');
      target = admitAdmin(principal, path.path);
    } else {
      const rule = deps.routes.require(req.method ?? 'GET', path.path);
      route = rule.name; // before the scope check, so a refusal is counted on its rule
      deps.routes.checkScopes(principal, rule);
      // The team filter before the quota (a refused filter costs none) and before the in-flight
      // slot (a refusal here holds none).
      const query = scopedQuery(principal, rule, path.query);
      // The quota after the scope check (a forbidden request costs none) and before the
      // in-flight slot (a refused request holds none); no limit, no store call.
      const limit = deps.rateLimits.limitFor(principal);
      const rate = limit === undefined ? undefined : await deps.rateLimits.take(principal, limit);
      target = {
        kind: 'forward',
        route: rule,
        upstreamPath: upstreamPath(deps, path.path) + query,
        ...(rate !== undefined ? { rate } : {}),
      };
      release = deps.inflight.acquire(principal.account);
    }
    return { admitted: true, credential, principal, target, hasBody, expectsContinue, release };
  } catch (err) {
    return refusal(err, credential, principal, route);
  }
}

function refusal(
  err: unknown,
  credential: CredentialSource | undefined,
  principal: Principal | undefined,
  route: string | undefined,
): Refusal {
  const error = asKeygateError(err);
  return {
    admitted: false,
    error,
    credential,
    principal,
    refusedKey:
      error instanceof AttributedKeyRefusal
        ? { keyId: error.keyId, account: error.account }
        : undefined,
    route,
  };
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function upstreamPath(deps: AdmitDeps, path: string): string {
  let rest = path;
  const strip = deps.stripPrefix;
  if (strip !== undefined && (path === strip || path.startsWith(`${strip}/`))) {
    rest = path.slice(strip.length) || '/';
  }
  return deps.upstreamBasePath + rest;
}
