import { KeygateError } from '../errors.js';
import { ownEntry } from '../shared/null-proto-record.js';

export type UpstreamFailure =
  | 'connect_refused'
  | 'connect_timeout'
  | 'timeout'
  | 'reset'
  | 'dns'
  | 'other';

const BY_CODE: Readonly<Record<string, UpstreamFailure>> = {
  ECONNREFUSED: 'connect_refused',
  EHOSTUNREACH: 'connect_refused',
  ENETUNREACH: 'connect_refused',
  UND_ERR_CONNECT_TIMEOUT: 'connect_timeout',
  ETIMEDOUT: 'connect_timeout',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  UND_ERR_SOCKET: 'reset',
  ENOTFOUND: 'dns',
  EAI_AGAIN: 'dns',
};

/** Reads the errno or undici code, looking through `cause` where undici wraps the socket error. */
export function classifyUpstreamError(err: unknown): UpstreamFailure {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    const failure = typeof code === 'string' ? ownEntry(BY_CODE, code) : undefined;
    if (failure !== undefined) return failure;
    current = current.cause;
  }
  return 'other';
}

/** Timeouts are 504; everything else that kept us from an answer is 502. */
export function toUpstreamError(kind: UpstreamFailure, cause: unknown): KeygateError {
  if (kind === 'connect_timeout' || kind === 'timeout') {
    return new KeygateError('upstream_timeout', 'the upstream did not answer in time', { cause });
  }
  return new KeygateError('upstream_unavailable', 'the upstream could not be reached', { cause });
}
