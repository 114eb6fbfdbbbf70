import { connect, type Socket } from 'node:net';

/**
 * A raw client socket driven step by step: for requests whose timing matters (Expect:
 * 100-continue, trickling chunked bodies) and for reading exactly what keygate wrote, interim
 * responses included. Everything received is kept as latin1 text in `received`.
 */
export class RawSession {
  received = '';
  closed = false;
  readonly socket: Socket;
  private readonly waiters = new Set<() => void>();
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.socket.on('data', (chunk: Buffer) => {
      this.received += chunk.toString('latin1');
      this.wake();
    });
    // A reset after keygate answered is an expected ending here, not a test failure.
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static async open(port: number): Promise<RawSession> {
    const session = new RawSession(port);
    await session.ready;
    return session;
  }

  write(text: string): void {
    if (!this.socket.destroyed) this.socket.write(text);
  }

  /** Resolves once `predicate` holds for what was received; rejects after `ms`. */
  until(predicate: (s: RawSession) => boolean, ms: number, what = 'condition'): Promise<void> {
    if (predicate(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate(this)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `timed out after ${ms} ms waiting for ${what}; got ${JSON.stringify(this.received)}`,
          ),
        );
      }, ms);
      this.waiters.add(check);
    });
  }

  /** Waits until a complete final (non-1xx) response has arrived, or the socket closed. */
  async response(ms = 5000): Promise<RawResponse> {
    await this.until((s) => s.closed || parseFinal(s.received) !== undefined, ms, 'a response');
    const parsed = parseFinal(this.received);
    if (!parsed)
      throw new Error(`no complete response before close: ${JSON.stringify(this.received)}`);
    return parsed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

export interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
  /** Interim (1xx) status lines that preceded the final response. */
  interim: number[];
  json: Record<string, unknown>;
}

/** Parses the first non-1xx response in `text` when its body (content-length framed) is complete. */
export function parseFinal(text: string): RawResponse | undefined {
  const interim: number[] = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) return undefined;
    const [statusLine = '', ...lines] = rest.slice(0, end).split('\r\n');
    const status = Number(statusLine.split(' ')[1] ?? 0);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    rest = rest.slice(end + 4);
    if (status >= 100 && status < 200) {
      interim.push(status);
      continue;
    }
    const length = Number(headers.get('content-length') ?? 0);
    if (headers.has('content-length') && rest.length < length) return undefined;
    const body = headers.has('content-length') ? rest.slice(0, length) : rest;
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(body) as Record<string, unknown>;
    } catch {
      // not JSON
    }
    return { status, headers, body, interim, json };
  }
}
