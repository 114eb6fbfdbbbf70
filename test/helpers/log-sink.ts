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
