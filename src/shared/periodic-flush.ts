/**
 * The timer behind keygate's batched writes off the request path (last-use times, request
 * counts): `write` runs every `flushMs`, never twice at once (a flush asked for while one runs
 * joins it), and `close` stops the timer and writes once more, so a clean shutdown loses nothing.
 */
export class PeriodicFlush {
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly write: () => Promise<void>,
    private readonly flushMs: number,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.flushMs);
    // A pending flush must not keep a finished process alive; close() writes what is left.
    this.timer.unref();
  }

  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    // One in flight may have taken its batch before newer uses arrived: wait for it, then write those.
    await this.flushing?.catch(() => undefined);
    await this.flush();
  }
}
