import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorHeaders, KeygateError, toErrorBody } from '../errors.js';

/** Writes the JSON error envelope; after headers went out, the only honest signal is a reset. */
export function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  err: KeygateError,
  requestId: string,
): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  const body = JSON.stringify(toErrorBody(err, requestId));
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-request-id': requestId,
    ...errorHeaders(err),
  };
  // An unread request body would otherwise be drained before the connection is reused.
  if (!req.complete) headers.connection = 'close';
  res.writeHead(err.status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

export function asKeygateError(err: unknown): KeygateError {
  return err instanceof KeygateError
    ? err
    : new KeygateError('internal_error', 'internal error', { cause: err });
}
