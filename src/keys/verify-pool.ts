import { KeygateError } from '../errors.js';

/**
 * Runs at most `concurrency` expensive jobs at once with at most `maxQueue` waiting; anything
 * beyond is shed at once with 503, so a flood of wrong keys cannot pile up unbounded work.
 */
export class VerifyPool {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly concurrency: number,
    private readonly maxQueue: number,
  ) {}

  get queueDepth(): number {
    return this.waiting.length;
  }

  /** True when a new job would be shed: callers can refuse before doing any other work. */
  get saturated(): boolean {
    return this.active >= this.concurrency && this.waiting.length >= this.maxQueue;
  }

  /** The refusal for a job that is not run (the caller saw `saturated`). */
  shedNow(): KeygateError {
    return new KeygateError(
      'verify_overloaded',
      'too many key verifications in progress; retry shortly',
    );
  }

  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.active >= this.concurrency) {
      if (this.waiting.length >= this.maxQueue) throw this.shedNow();
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
      });
    } else {
      this.active++;
    }
    try {
      return await job();
    } finally {
      const next = this.waiting.shift();
      // Hand the slot straight to the next job, so `active` never dips and lets a newcomer jump the queue.
      if (next) next();
      else this.active--;
    }
  }
}
