import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { captureUpstreamRequest } from './captured-logs.js';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  bodyBytes: number;
  body: string;
}

export type UpstreamHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
) => void | Promise<void>;

/**
 * A real HTTP upstream on port 0 that records every request it receives (so tests can assert
 * what keygate forwarded) and answers with a JSON echo unless a route handler says otherwise.
 */
export class RecordingUpstream {
  readonly requests: RecordedRequest[] = [];
  private readonly handlers = new Map<string, UpstreamHandler>();

  private constructor(private readonly server: Server) {}

  static async start(): Promise<RecordingUpstream> {
    let self: RecordingUpstream | undefined;
    // Accepts larger headers than keygate does, so a refusal in a test is keygate's, not ours.
    const server = createServer(
      { maxHeaderSize: 64 * 1024 },
      (req, res) => void self?.handle(req, res),
    );
    server.keepAliveTimeout = 60_000;
    self = new RecordingUpstream(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return self;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Answers requests whose path (without query) equals `path` with `handler`. */
  on(path: string, handler: UpstreamHandler): void {
    this.handlers.set(path, handler);
  }

  /** Streams the body of requests to `path` without buffering it, counting bytes only. */
  onStream(path: string, handler: (req: IncomingMessage, res: ServerResponse) => void): void {
    this.handlers.set(`stream:${path}`, (req, res) => handler(req, res));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const record: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyBytes: 0,
      body: '',
    };
    this.requests.push(record);
    // For the leak oracle, kept apart from `requests` (which tests reset): target and headers.
    captureUpstreamRequest(record.method, record.url, record.rawHeaders);
    const streaming = this.handlers.get(`stream:${path}`);
    if (streaming) {
      void streaming(req, res, Buffer.alloc(0));
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    record.bodyBytes = body.length;
    record.body = body.toString('utf8');
    const handler = this.handlers.get(path);
    if (handler) {
      await handler(req, res, body);
      return;
    }
    const json = JSON.stringify({ code: 200, data: { method: req.method, url: req.url } });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(json);
  }

  reset(): void {
    this.requests.length = 0;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
