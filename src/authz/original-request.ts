import { KeygateError } from '../errors.js';
import { carriesKey } from '../keys/key-in-request.js';
import { canonicalHeaderName } from '../shared/header-name.js';
import { KEYGATE_PREFIX } from '../shared/keygate-prefix.js';

/** The endpoint a data plane asks (DESIGN §13); Envoy appends the original path to it. */
export const AUTHZ_PATH = `${KEYGATE_PREFIX}/authz`;

/** Which of the three forms of DESIGN §13 named the original request (the first present). */
export type OriginalForm = 'envoy' | 'nginx' | 'forwarded';

/** The request a data plane asks about: its method and its target (path and query, raw). */
export interface OriginalRequest {
  readonly form: OriginalForm;
  readonly method: string;
  /** Raw, as the data plane sent it: normalised by the caller exactly as proxy mode does. */
  readonly target: string;
}

/**
 * `url` is the authz endpoint itself, or below it (Envoy's form). `/_keygate/authz?x` is the
 * endpoint with a query no form defines: it names no original request.
 */
export function isAuthzUrl(url: string): boolean {
  if (!url.startsWith(AUTHZ_PATH)) return false;
  const next = url.charCodeAt(AUTHZ_PATH.length);
  return Number.isNaN(next) || next === 47 /* / */ || next === 63; /* ? */
}

// The headers that carry an original request, by canonical name (lower case, "_" as "-", the
// way lenient servers fold them: a client's `X_Original_URI` is the same header, so it counts
// as a duplicate or a conflict instead of slipping past).
const ORIGINAL_URI = 'x-original-uri';
const ORIGINAL_URL = 'x-original-url';
const ORIGINAL_METHOD = 'x-original-method';
const FORWARDED_URI = 'x-forwarded-uri';
const FORWARDED_METHOD = 'x-forwarded-method';
const ORIGINAL_HEADERS = [
  ORIGINAL_URI,
  ORIGINAL_URL,
  ORIGINAL_METHOD,
  FORWARDED_URI,
  FORWARDED_METHOD,
] as const;
type OriginalHeader = (typeof ORIGINAL_HEADERS)[number];
/** The headers whose value is (or holds) the original URL. */
const URL_HEADERS: ReadonlySet<string> = new Set([ORIGINAL_URI, ORIGINAL_URL, FORWARDED_URI]);

// Methods are case-sensitive tokens (RFC 9110 §9.1); Node refuses anything else on the request
// line, so an original method is held to the same: upper-case letters, nothing else.
const METHOD = /^[A-Z]{1,16}$/;

function invalid(message: string): never {
  throw new KeygateError('invalid_original_request', message);
}

function conflicting(message: string): never {
  throw new KeygateError('conflicting_original_request', message);
}

/**
 * A key in a header that carries the original URL is a key in the URL (it IS the URL the client
 * sent): refused as credential_in_url, before anything else, like a key in a proxied target.
 */
export function refuseKeysInOriginalUrl(rawHeaders: readonly string[], prefix: string): void {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!URL_HEADERS.has(canonicalHeaderName(rawHeaders[i] as string))) continue;
    if (carriesKey(rawHeaders[i + 1] ?? '', prefix)) {
      throw new KeygateError(
        'credential_in_url',
        'the original URL contains an API key; send keys only in X-API-KEY or Authorization, and rotate this one',
      );
    }
  }
}

/**
 * The path and query of ingress-nginx's `X-Original-URL` (`scheme://host/path?query`), taken
 * as raw text: a URL parser would resolve `..` and re-encode, so the path authorised would not
 * be the path the client sent (normaliseTarget refuses such paths instead).
 */
export function targetOfAbsoluteUrl(url: string): string {
  const scheme = /^https?:\/\//i.exec(url);
  if (scheme === null) invalid('X-Original-URL must be an absolute http(s) URL');
  const rest = url.slice(scheme[0].length);
  const end = rest.search(/[/?#]/);
  if (end === -1) return '/';
  if (rest[end] === '#') invalid('X-Original-URL must not carry a fragment');
  if (end === 0) invalid('X-Original-URL has no host');
  return rest[end] === '?' ? `/${rest.slice(end)}` : rest.slice(end);
}

/**
 * The original request a data plane asks about, from the authz request's own method and URL and
 * its headers. Every form present must name the same method and target (else 400
 * conflicting_original_request: a client-added header must never pick what is authorised); a
 * header given twice is a conflict too. A form with its target but no method (or the reverse)
 * is 400 invalid_original_request: guessing GET would authorise a request nobody asked about.
 */
export function parseOriginalRequest(
  method: string,
  url: string,
  rawHeaders: readonly string[],
): OriginalRequest {
  // One slot per header, filled once: a flat record over a closed set of names.
  const seen: Record<OriginalHeader, string | undefined> = {
    [ORIGINAL_URI]: undefined,
    [ORIGINAL_URL]: undefined,
    [ORIGINAL_METHOD]: undefined,
    [FORWARDED_URI]: undefined,
    [FORWARDED_METHOD]: undefined,
  };
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = canonicalHeaderName(rawHeaders[i] as string);
    const header = ORIGINAL_HEADERS.find((h) => h === name);
    if (header === undefined) continue;
    if (seen[header] !== undefined) conflicting(`${header} is given more than once`);
    seen[header] = rawHeaders[i + 1] ?? '';
  }

  const forms: OriginalRequest[] = [];
  const suffix = url.slice(AUTHZ_PATH.length);
  if (suffix.startsWith('/')) forms.push({ form: 'envoy', method, target: suffix });

  const uri = seen[ORIGINAL_URI];
  const full = seen[ORIGINAL_URL];
  const nginxMethod = seen[ORIGINAL_METHOD];
  if (uri !== undefined || full !== undefined || nginxMethod !== undefined) {
    const fromFull = full === undefined ? undefined : targetOfAbsoluteUrl(full);
    if (uri !== undefined && fromFull !== undefined && uri !== fromFull) {
      conflicting('X-Original-URI and X-Original-URL name different targets');
    }
    const target = uri ?? fromFull;
    if (target === undefined) invalid('X-Original-Method without X-Original-URI or X-Original-URL');
    if (nginxMethod === undefined) {
      invalid('X-Original-Method is required with X-Original-URI or X-Original-URL');
    }
    forms.push({ form: 'nginx', method: nginxMethod, target });
  }

  const fwdUri = seen[FORWARDED_URI];
  const fwdMethod = seen[FORWARDED_METHOD];
  if (fwdUri !== undefined || fwdMethod !== undefined) {
    if (fwdUri === undefined) invalid('X-Forwarded-Method without X-Forwarded-Uri');
    if (fwdMethod === undefined) invalid('X-Forwarded-Method is required with X-Forwarded-Uri');
    forms.push({ form: 'forwarded', method: fwdMethod, target: fwdUri });
  }

  const first = forms[0];
  if (first === undefined) {
    invalid(
      'no original request: use /_keygate/authz/<path>, X-Original-URI + X-Original-Method, or X-Forwarded-Uri + X-Forwarded-Method',
    );
  }
  for (const other of forms) {
    if (!METHOD.test(other.method)) invalid('the original method is not an HTTP method token');
    if (other.method !== first.method || other.target !== first.target) {
      conflicting(`the ${first.form} and ${other.form} forms name different requests`);
    }
  }
  return first;
}
