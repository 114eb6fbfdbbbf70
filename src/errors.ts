/**
 * The one closed list of error codes keygate answers with, and the HTTP status of each.
 * Every error body is built from this table, so a code can never drift from its status.
 */
export const ERROR_STATUS = {
  bad_request: 400,
  invalid_path: 400,
  ambiguous_credentials: 400,
  credential_in_url: 400,
  credential_in_header: 400,
  body_not_allowed: 400,
  invalid_original_request: 400,
  conflicting_original_request: 400,
  invalid_filter: 400,
  missing_credentials: 401,
  invalid_key: 401,
  expired_key: 401,
  revoked_key: 401,
  account_disabled: 401,
  insufficient_scope: 403,
  route_not_allowed: 403,
  filter_required: 403,
  not_found: 404,
  method_not_allowed: 405,
  body_timeout: 408,
  payload_too_large: 413,
  too_many_headers: 431,
  unsupported_media_type: 415,
  conflict: 409,
  rate_limited: 429,
  auth_throttled: 429,
  too_many_inflight: 429,
  internal_error: 500,
  not_implemented: 501,
  upstream_unavailable: 502,
  store_unavailable: 503,
  verify_overloaded: 503,
  upstream_saturated: 503,
  upstream_timeout: 504,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** Seconds a client should wait before retrying, for the codes where waiting helps. */
const RETRY_AFTER_SECONDS: Partial<Record<ErrorCode, number>> = {
  store_unavailable: 2,
  verify_overloaded: 1,
  rate_limited: 1,
  too_many_inflight: 1,
  upstream_saturated: 1,
  // The failure budget refills over its window; sooner retries are refused again.
  auth_throttled: 30,
};

export class KeygateError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /**
   * Response headers of this one refusal, flat `[name, value, ...]`, after (and over) the
   * code's own: a 429 rate_limited says when its window resets (RateLimit, Retry-After).
   */
  readonly headers: readonly string[] | undefined;
  override readonly name = 'KeygateError';

  /** `message` is shown to the client: it must never contain a key or a secret. */
  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; headers?: readonly string[] },
  ) {
    // A KeygateError is an answer to the client, not a bug: nobody reads its stack, and
    // capturing one cost about 4.3 µs per refusal (of ~55 µs for a whole refused request,
    // measured), paid by every malformed, unknown or forbidden request. An internal_error keeps
    // the stack of its `cause`, which is what gets logged.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message, options);
    Error.stackTraceLimit = stackTraceLimit;
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.headers = options?.headers;
  }
}

export interface ErrorBody {
  code: number;
  error: ErrorCode;
  message: string;
  request_id: string;
}

export function toErrorBody(err: KeygateError, requestId: string): ErrorBody {
  return { code: err.status, error: err.code, message: err.message, request_id: requestId };
}

/** Response headers an error carries besides content-type. */
export function errorHeaders(err: KeygateError): Record<string, string> {
  const headers: Record<string, string> = {};
  if (err.status === 401) {
    // RFC 6750 §3: no error attribute when the request carried no credentials at all.
    headers['www-authenticate'] =
      err.code === 'missing_credentials'
        ? 'Bearer realm="keygate"'
        : 'Bearer realm="keygate", error="invalid_token"';
  } else if (err.code === 'insufficient_scope') {
    headers['www-authenticate'] = 'Bearer realm="keygate", error="insufficient_scope"';
  }
  const retryAfter = RETRY_AFTER_SECONDS[err.code];
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  const own = err.headers;
  if (own !== undefined) {
    // own-key: names are keygate's own lower-case literals (rateLimitHeaders), never a client's
    for (let i = 0; i + 1 < own.length; i += 2) headers[own[i] as string] = own[i + 1] as string;
  }
  return headers;
}
