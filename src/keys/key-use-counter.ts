import { PeriodicFlush } from '../shared/periodic-flush.js';
import type { KeyStore } from '../store/key-store.js';

export interface KeyUseCounterOptions {
  store: KeyStore;
  /** How often pending counts are added to the store. */
  flushMs: number;
  /**
   * At most this many distinct keys are held between flushes; a request of a key beyond them
   * is not counted (and is reported as dropped) rather than growing the map without end.
   */
  maxPendingKeys: number;
  /** A flush failed; its counts are kept for the next one. */
  onError?: (err: unknown) => void;
  /** Requests not counted because the map was full (called with how many, as they happen). */
  onDropped?: (requests: number) => void;
}

/** Distinct keys held between flushes: far more than a replica serves in a few seconds. */
export const MAX_PENDING_KEY_USES = 10_000;

/**
 * Counts admitted requests per key, off the request path: `count` is one map update; the sums
 * are added to the store by a timer (one `addKeyUses` per flush, whatever the traffic) and on
 * close. Each replica adds only its own requests, so replicas' counts add up in the store.
 *
 * Bounded: the map holds at most `maxPendingKeys` ids (ids of verified keys, so it grows only
 * with keys really in use); a further key's requests are dropped and reported, never queued.
 * A failed flush keeps its counts (within the same bound) for the next one: a write that
 * failed half-way (some Redis nodes answered, some not) may so count some requests twice,
 * which is the lesser harm than losing every count of an outage. A crash loses at most the
 * counts of one flush interval (plus any held through a store outage).
 */
export class KeyUseCounter {
  private pending = new Map<string, number>();
  private readonly flusher: PeriodicFlush;

  constructor(private readonly options: KeyUseCounterOptions) {
    this.flusher = new PeriodicFlush(() => this.write(), options.flushMs);
  }

  start(): void {
    this.flusher.start();
  }

  count(keyId: string): void {
    this.add(this.pending, keyId, 1);
  }

  /** Adds what is pending to the store; a failed write keeps its counts for the next flush. */
  flush(): Promise<void> {
    return this.flusher.flush();
  }

  close(): Promise<void> {
    return this.flusher.close();
  }

  private add(into: Map<string, number>, keyId: string, requests: number): void {
    const held = into.get(keyId);
    if (held !== undefined) into.set(keyId, held + requests);
    else if (into.size < this.options.maxPendingKeys) into.set(keyId, requests);
    else this.options.onDropped?.(requests);
  }

  private async write(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    // Requests admitted while the write runs go to a fresh map, written by the next flush.
    this.pending = new Map();
    try {
      await this.options.store.addKeyUses([...batch].map(([id, count]) => ({ id, count })));
    } catch (err) {
      for (const [id, count] of batch) this.add(this.pending, id, count);
      this.options.onError?.(err);
    }
  }
}
