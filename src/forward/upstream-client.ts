import type { Readable, Writable } from 'node:stream';
import { Pool } from 'undici';
import type { FlatHeaders } from './request-headers.js';
import type { UpstreamCancel } from './upstream-cancel.js';

export interface UpstreamRequest {
  method: string;
  /** Path and query as they are to be sent. */
  path: string;
  /** Flat `[name, value, ...]`; undici adds Host from the upstream URL. */
  headers: FlatHeaders;
  /** The client's request body, streamed; null when there is none. */
  body: Readable | null;
  /** Fires when the client goes away (see UpstreamCancel). */
  signal: UpstreamCancel;
}

/**
 * Called once the upstream's status and headers arrive; returns where the body goes.
 * Streaming into the returned Writable keeps memory flat whatever the body size. The headers
 * are raw and flat (`[name, value, ...]`): never parsed into an object keyed by upstream names.
 */
export type ResponseSink = (statusCode: number, headers: FlatHeaders) => Writable;

/** Sends one request upstream. The only seam between keygate and its HTTP client library. */
export interface UpstreamClient {
  forward(request: UpstreamRequest, sink: ResponseSink): Promise<void>;
  close(): Promise<void>;
}

export interface UndiciUpstreamOptions {
  url: string;
  connections: number;
  connectTimeoutMs: number;
  /** Time to the response headers, and the longest pause between body chunks. */
  timeoutMs: number;
}

/**
 * undici Pool with keep-alive: measured at roughly half the proxy CPU per request of
 * http-proxy on node:http (README "Forwarding: why undici").
 */
export class UndiciUpstreamClient implements UpstreamClient {
  private readonly pool: Pool;
  private readonly timeoutMs: number;

  constructor(options: UndiciUpstreamOptions) {
    this.pool = new Pool(new URL(options.url).origin, {
      connections: options.connections,
      connect: { timeout: options.connectTimeoutMs },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      keepAliveTimeout: 30_000,
    });
    this.timeoutMs = options.timeoutMs;
  }

  async forward(request: UpstreamRequest, sink: ResponseSink): Promise<void> {
    await this.pool.stream(
      {
        method: request.method as 'GET',
        path: request.path,
        headers: request.headers,
        body: request.body,
        signal: request.signal,
        responseHeaders: 'raw',
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      },
      // With responseHeaders 'raw', undici hands over a flat string array (names as sent,
      // values latin1-decoded); its types still say IncomingHttpHeaders.
      ({ statusCode, headers }) => sink(statusCode, headers as unknown as FlatHeaders),
    );
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
