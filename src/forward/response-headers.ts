import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

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

/** Upstream response headers minus hop-by-hop ones (and any the upstream's Connection names). */
export function responseHeaders(
  upstream: IncomingHttpHeaders,
  requestId: string,
): OutgoingHttpHeaders {
  const named = upstream.connection
    ? new Set(
        String(upstream.connection)
          .split(',')
          .map((t) => t.trim().toLowerCase()),
      )
    : undefined;
  const out: OutgoingHttpHeaders = {};
  for (const name in upstream) {
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue;
    const value = upstream[name];
    if (value !== undefined) out[name] = value;
  }
  out['x-request-id'] = requestId;
  return out;
}
