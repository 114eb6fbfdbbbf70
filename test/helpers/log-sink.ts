import { Writable } from 'node:stream';
import { captureLog } from './captured-logs.js';

/** A pino destination that keeps every line, parsed, so tests can assert on (and grep) logs. */
export class LogSink extends Writable {
  readonly raw: string[] = [];

  constructor() {
    super({
      write: (chunk: Buffer, _encoding, callback) => {
        const text = chunk.toString('utf8');
        captureLog(text);
        for (const line of text.split('\n')) if (line) this.raw.push(line);
        callback();
      },
    });
  }

  get lines(): Array<Record<string, unknown>> {
    return this.raw.map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  access(): Array<Record<string, unknown>> {
    return this.lines.filter((l) => l.type === 'access');
  }

  /**
   * Waits for the access line of one request (by its X-Request-Id) and returns it. The line is
   * written when the server closes the response, which can be after the client has read it: a
   * check of "nothing in the logs" made before this line exists proves nothing about it.
   */
  async accessFor(requestId: unknown, timeoutMs = 2000): Promise<Record<string, unknown>> {
    if (typeof requestId !== 'string' || requestId === '') {
      throw new Error(`accessFor: no request id to wait for (got ${String(requestId)})`);
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.access().find((l) => l.request_id === requestId);
      if (line !== undefined) return line;
      if (Date.now() > deadline) throw new Error(`no access line for request ${requestId}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Waits until `count` access lines exist (they are written when the response closes). */
  async waitForAccess(count: number, timeoutMs = 2000): Promise<Array<Record<string, unknown>>> {
    const deadline = Date.now() + timeoutMs;
    while (this.access().length < count) {
      if (Date.now() > deadline)
        throw new Error(`expected ${count} access lines, got ${this.access().length}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.access();
  }
}
