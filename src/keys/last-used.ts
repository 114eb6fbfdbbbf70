import { type Clock, unixSeconds } from '../shared/clock.js';
import { PeriodicFlush } from '../shared/periodic-flush.js';
import type { KeyStore } from '../store/key-store.js';

export interface LastUsedOptions {
  store: KeyStore;
  clock: Clock;
  /** At most one write per key per this many seconds, per replica. */
  intervalSeconds: number;
  /** How often pending marks are written. */
  flushMs: number;
  onError?: (err: unknown) => void;
}

/**
 * Records when keys were last used, off the request path: `mark` is a map look-up; writes are
 * batched by a timer, at most once a minute per key per replica, and the store only ever moves
 * last_used_at forward, so replicas flushing out of order cannot move it back.
 */
export class LastUsedRecorder {
  private readonly lastMarked = new Map<string, number>();
  private pending = new Map<string, number>();
  private readonly flusher: PeriodicFlush;

  constructor(private readonly options: LastUsedOptions) {
    this.flusher = new PeriodicFlush(() => this.write(), options.flushMs);
  }

  start(): void {
    this.flusher.start();
  }

  mark(keyId: string): void {
    const now = unixSeconds(this.options.clock);
    const last = this.lastMarked.get(keyId);
    if (last !== undefined && now - last < this.options.intervalSeconds) return;
    this.lastMarked.set(keyId, now);
    this.pending.set(keyId, now);
  }

  /** Writes what is pending; failed writes are kept for the next flush. */
  flush(): Promise<void> {
    return this.flusher.flush();
  }

  close(): Promise<void> {
    return this.flusher.close();
  }

  private async write(): Promise<void> {
    const now = unixSeconds(this.options.clock);
    // Forget keys not seen for an interval: the map stays as small as the set of active keys.
    for (const [id, at] of this.lastMarked) {
      if (now - at >= this.options.intervalSeconds && !this.pending.has(id))
        this.lastMarked.delete(id);
    }
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    try {
      await this.options.store.touchKeys(
        [...batch].map(([id, lastUsedAt]) => ({ id, lastUsedAt })),
      );
    } catch (err) {
      for (const [id, at] of batch) if ((this.pending.get(id) ?? 0) < at) this.pending.set(id, at);
      this.options.onError?.(err);
    }
  }
}
