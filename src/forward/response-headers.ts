import type { ServerResponse } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Upstream response headers minus hop-by-hop ones (and any the upstream's Connection names),
 * with keygate's `x-request-id` instead of the upstream's. Flat in, flat out
 * (`[name, value, ...]`, as undici's raw headers and Node's `writeHead` take them): duplicates
 * and order survive, and an upstream header named `__proto__` or `0` is just a name.
 */
export function responseHeaders(upstream: readonly string[], requestId: string): string[] {
  const named = new Set<string>();
  for (let i = 0; i < upstream.length; i += 2) {
    if ((upstream[i] as string).toLowerCase() === 'connection') {
      for (const token of (upstream[i + 1] ?? '').split(',')) named.add(token.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  for (let i = 0; i < upstream.length; i += 2) {
    const name = upstream[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower) || lower === 'x-request-id') continue;
    out.push(name, upstream[i + 1] ?? '');
  }
  out.push('x-request-id', requestId);
  return out;
}

/**
 * `res.writeHead(status, flat)`, keeping duplicates. Node 20's writeHead merges a flat list
 * into headers already set with setHeader (e.g. `connection: close` while draining) one
 * setHeader at a time, so only the last of each duplicate (two Set-Cookie) would survive;
 * then each header is appended instead.
 */
export function writeResponseHead(
  res: ServerResponse,
  statusCode: number,
  headers: readonly string[],
): void {
  if (res.getHeaderNames().length === 0) {
    res.writeHead(statusCode, headers as string[]);
    return;
  }
  for (let i = 0; i < headers.length; i += 2) {
    res.appendHeader(headers[i] as string, headers[i + 1] as string);
  }
  res.writeHead(statusCode);
}
