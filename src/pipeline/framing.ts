import { KeygateError } from '../errors.js';

/**
 * Methods whose requests keygate forwards without content. RFC 9110 gives a body on GET,
 * HEAD and OPTIONS no defined semantics (§9.3.1, §9.3.2, §9.3.7) and forbids one on TRACE
 * (§9.3.8); servers and caches disagree on whether such a body exists at all, which is how
 * request smuggling starts. Refusing is clearer than silently dropping bytes.
 */
const BODYLESS_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * Most header field lines a request may carry. keygate appends its own identity and forwarding
 * headers after the client's; a server that keeps only its first N lines and silently drops the
 * rest (Node's default keeps about 1000) would lose exactly those, so a client could strip them.
 * Real clients send a few dozen (Envoy's default cap is 100, HAProxy's 101). The listener keeps
 * every line (server.maxHeadersCount = 0, bounded by listen.maxHeaderBytes), so this count is
 * exact and no Host, Content-Length or credential can hide past a parser's cut-off either.
 */
export const MAX_HEADER_LINES = 256;

export interface FramingInput {
  method: string;
  /** "1.1" or "1.0", as node:http reports it. */
  httpVersion: string;
  /** node:http's flat [name, value, name, value, …] list: every field line, in order. */
  rawHeaders: readonly string[];
}

export interface Framing {
  /** True when the request carries content keygate must stream upstream. */
  readonly hasBody: boolean;
}

/**
 * The first stage, before credentials: refuses requests whose framing keygate and an upstream
 * parser could read differently. Works on rawHeaders, because node:http folds duplicates
 * (it keeps the first Host, joins Transfer-Encoding lines) and that folding is what hides them.
 */
export function checkFraming(input: FramingInput): Framing {
  let hosts = 0;
  let emptyHost = false;
  const codingLines: string[] = [];
  let contentLength: string | undefined;
  const raw = input.rawHeaders;
  if (raw.length > MAX_HEADER_LINES * 2) {
    throw new KeygateError(
      'too_many_headers',
      `the request has more than ${MAX_HEADER_LINES} header fields`,
    );
  }
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    if (name === 'host') {
      hosts++;
      if (value.trim() === '') emptyHost = true;
    } else if (name === 'transfer-encoding') {
      codingLines.push(value);
    } else if (name === 'content-length') {
      // node:http already refuses duplicates and non-digits (HPE_UNEXPECTED/INVALID_CONTENT_LENGTH).
      contentLength = value;
    }
  }

  // RFC 9112 §3.2: a request with more than one Host field line, or (HTTP/1.1) none, is a 400.
  if (hosts > 1) {
    throw new KeygateError('bad_request', 'the request has more than one Host header');
  }
  if (hosts === 0 && input.httpVersion !== '1.0') {
    throw new KeygateError('bad_request', 'the request has no Host header');
  }
  // An empty Host is only meaningful for a target without an authority, which keygate never
  // serves; it is also how some parsers are tricked into picking a different authority.
  if (emptyHost) throw new KeygateError('bad_request', 'the Host header is empty');

  if (codingLines.length > 0) checkTransferEncoding(codingLines, input.httpVersion);

  const hasBody =
    codingLines.length > 0 || (contentLength !== undefined && Number(contentLength) > 0);
  if (hasBody && BODYLESS_METHODS.has(input.method)) {
    throw new KeygateError('body_not_allowed', `a ${input.method} request must not have a body`);
  }
  return { hasBody };
}

/**
 * Only a single, plain `chunked` is accepted. Any other coding (gzip, deflate, identity, …)
 * is a 501 (RFC 9112 §6.1): node:http would de-chunk it and keygate would forward the still
 * encoded bytes as if they were plain. Lists with empty or repeated elements, or several field
 * lines, are malformed (400): they are where parsers disagree.
 */
function checkTransferEncoding(lines: readonly string[], httpVersion: string): void {
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means the framing is faulty.
  if (httpVersion === '1.0') {
    throw new KeygateError('bad_request', 'Transfer-Encoding is not allowed in HTTP/1.0');
  }
  const codings = lines.flatMap((line) => line.split(',')).map((c) => c.trim().toLowerCase());
  const unsupported = codings.find((c) => c !== '' && c !== 'chunked');
  if (unsupported !== undefined) {
    throw new KeygateError(
      'not_implemented',
      'only Transfer-Encoding: chunked is supported; send other codings as Content-Encoding',
    );
  }
  if (lines.length !== 1 || codings.length !== 1 || codings[0] !== 'chunked') {
    throw new KeygateError('bad_request', 'the Transfer-Encoding header is malformed');
  }
}
