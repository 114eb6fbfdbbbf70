import { randomUUID } from 'node:crypto';
import { createServer, type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Config } from '../config/schema.js';
import { KeygateError, toErrorBody } from '../errors.js';
import type { RequestPipeline } from './handle-request.js';

/** Writes a JSON error straight onto a socket that has left the request/response cycle. */
function refuseOnSocket(socket: Duplex, err: KeygateError): void {
  const body = JSON.stringify(toErrorBody(err, randomUUID()));
  socket.end(
    // own-key: err.status comes from the closed table in errors.ts
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * The proxy listener: node:http with keygate's limits, every request handed to the pipeline,
 * and the ways a connection can leave the request/response cycle (upgrade, CONNECT, a parse
 * error) answered rather than dropped.
 */
export function createProxyListener(
  listen: Readonly<Config['listen']>,
  pipeline: RequestPipeline,
): Server {
  const server = createServer(
    {
      maxHeaderSize: listen.maxHeaderBytes,
      requestTimeout: listen.requestTimeoutMs,
      headersTimeout: listen.headersTimeoutMs,
      keepAliveTimeout: listen.keepAliveTimeoutMs,
    },
    (req, res) => void pipeline.handle(req, res),
  );
  // Keep every header line (listen.maxHeaderBytes bounds them): Node's default silently drops
  // lines past about 1000, where a second Host or a Content-Length would hide from checkFraming,
  // which refuses more than MAX_HEADER_LINES itself.
  server.maxHeadersCount = 0;
  // With a listener here node:http no longer answers `100 Continue` by itself: the pipeline
  // sends it only after authentication and route policy admitted the request.
  server.on('checkContinue', (req, res) => void pipeline.handle(req, res, true));
  // WebSocket upgrades and CONNECT tunnels are not proxied: answer clearly rather than drop.
  server.on('upgrade', (_req, socket: Duplex) =>
    refuseOnSocket(
      socket,
      new KeygateError('not_implemented', 'protocol upgrades are not supported'),
    ),
  );
  server.on('connect', (_req, socket: Duplex) =>
    refuseOnSocket(
      socket,
      new KeygateError(
        'method_not_allowed',
        'CONNECT is not supported: keygate is not a forward proxy',
      ),
    ),
  );
  server.on('clientError', (err, socket) => {
    if (!socket.writable) return;
    const tooLarge = (err as NodeJS.ErrnoException).code === 'HPE_HEADER_OVERFLOW';
    socket.end(
      tooLarge
        ? 'HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\r\n'
        : 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n',
    );
  });
  return server;
}
