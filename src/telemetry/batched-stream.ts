/** The part of sonic-boom (pino.destination) that batching writes through to. */
export interface LineSink {
  write(chunk: string): unknown;
  flush?(cb?: (err?: Error | null) => void): void;
  flushSync?(): void;
}

/**
 * Log lines gathered into batches before they reach the destination. sonic-boom appends each
 * line to its pending buffer and measures that whole buffer (Buffer.byteLength, which also
 * flattens it) on every write, so its own `minLength` batching costs more per line the larger
 * the batch. Here a line is only pushed onto an array; the batch is joined once and written as
 * one chunk when it reaches `batchChars`, on a timer (a quiet server's lines appear within
 * `flushMs`), on flush() (awaited at shutdown) and synchronously at process exit.
 * Every line of the process goes through one instance, so lines keep their order.
 */
export class BatchedLineStream implements LineSink {
  private pending: string[] = [];
  private pendingChars = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly onExit = () => this.flushSync();

  constructor(
    private readonly sink: LineSink,
    private readonly batchChars: number,
    flushMs: number,
  ) {
    this.timer = setInterval(() => this.release(), flushMs);
    // Never keeps a finished process alive; the exit hook below writes what is left.
    this.timer.unref();
    process.once('exit', this.onExit);
  }

  write(line: string): boolean {
    this.pending.push(line);
    this.pendingChars += line.length;
    if (this.pendingChars >= this.batchChars) this.release();
    return true;
  }

  /** Hands the pending batch to the sink, then lets the sink finish its writes. */
  flush(cb?: (err?: Error | null) => void): void {
    this.release();
    if (this.sink.flush) this.sink.flush(cb);
    else cb?.();
  }

  flushSync(): void {
    this.release();
    this.sink.flushSync?.();
  }

  /** Stops the timer and the exit hook (for a stream made for a test, not the process's). */
  close(): void {
    this.flushSync();
    clearInterval(this.timer);
    process.removeListener('exit', this.onExit);
  }

  private release(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending.length === 1 ? (this.pending[0] as string) : this.pending.join('');
    this.pending = [];
    this.pendingChars = 0;
    this.sink.write(batch);
  }
}
