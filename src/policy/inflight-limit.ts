import { KeygateError } from '../errors.js';

/**
 * Bounds the requests one service account may have in flight, so no tenant can hold the whole
 * upstream pool (with slow bodies, slow queries or a runaway loop). A `Map` keyed by account
 * name: never a plain object, whatever the name. Entries are deleted at zero, so the map holds
 * only accounts that have something in flight.
 */
export class InflightLimit {
  private readonly counts = new Map<string, number>();

  constructor(private max: number) {}

  /**
   * A config reload's new bound: applies to the next acquire. Slots already held stay held and
   * are released into the same counts, so a lower bound refuses new requests until the
   * account is under it (never a second, empty set of counts beside the old one).
   */
  setMax(max: number): void {
    this.max = max;
  }

  /**
   * Takes a slot for `account`, or throws too_many_inflight (429). Returns the release, which
   * is idempotent: callers hook it to every way a request can end, and only the first counts.
   */
  acquire(account: string): () => void {
    const held = this.counts.get(account) ?? 0;
    if (held >= this.max) {
      throw new KeygateError(
        'too_many_inflight',
        `this account already has ${this.max} requests in flight; retry when one has finished`,
      );
    }
    this.counts.set(account, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.counts.get(account) ?? 1) - 1;
      if (left <= 0) this.counts.delete(account);
      else this.counts.set(account, left);
    };
  }

  /** Requests `account` has in flight now. */
  inflight(account: string): number {
    return this.counts.get(account) ?? 0;
  }

  /** Accounts with at least one request in flight. */
  get accounts(): number {
    return this.counts.size;
  }
}
