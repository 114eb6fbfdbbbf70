import { Readable } from 'node:stream';

export interface IdleGuardOptions {
  /** Longest wait for the client's next bytes while keygate is asking for them. */
  idleMs: number;
  /** Called once, the first time the upstream asks for body bytes (used for 100 Continue). */
  onFirstRead?: () => void;
  /** Called once, when the client kept keygate waiting for `idleMs`. */
  onIdle: () => void;
}

/**
 * The client's request body as the upstream reads it, with an idle timer that runs only while
 * keygate is waiting for the client: the timer is armed when the consumer asks for more and
 * disarmed by the next chunk. A body held back by a slow upstream (backpressure) never times
 * out; a client that trickles, or stops, is cut off after `idleMs` instead of holding an
 * upstream connection for the whole request timeout.
 */
export class IdleGuardedBody extends Readable {
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private fired = false;
  private readonly onData = (chunk: Buffer) => {
    this.disarm();
    if (!this.push(chunk)) this.source.pause();
  };
  private readonly onEnd = () => {
    this.disarm();
    this.push(null);
  };
  private readonly onError = (err: Error) => this.destroy(err);
  private readonly onClose = () => {
    if (!this.source.readableEnded) this.destroy(new Error('the client closed the request body'));
  };

  constructor(
    private readonly source: Readable,
    private readonly options: IdleGuardOptions,
  ) {
    super();
  }

  override _read(): void {
    if (!this.started) {
      this.started = true;
      this.source.on('data', this.onData);
      this.source.once('end', this.onEnd);
      this.source.once('error', this.onError);
      this.source.once('close', this.onClose);
      this.options.onFirstRead?.();
    }
    if (this.source.readableEnded) return;
    this.arm();
    this.source.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.disarm();
    // The source (the IncomingMessage) is left alone: destroying it would destroy the socket,
    // and the client is still owed its error response.
    this.source.off('data', this.onData);
    this.source.off('end', this.onEnd);
    this.source.off('error', this.onError);
    this.source.off('close', this.onClose);
    this.source.pause();
    callback(err);
  }

  private arm(): void {
    if (this.timer) return; // already waiting: the deadline counts from the first ask
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.fired) return;
      this.fired = true;
      this.options.onIdle();
    }, this.options.idleMs);
    // Never keeps a shutting-down process alive; the request is cut off by the drain anyway.
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
