import type { Clock } from '../shared/clock.js';
import { addressBucket } from './address-bucket.js';

export interface FailureBudgetLimits {
  /** Failed argon2 verifications allowed per key id within the window. */
  perKeyId: number;
  /** Failed argon2 verifications allowed per client address (IPv6: per /64) within the window. */
  perAddress: number;
  windowMs: number;
}

/** The config schema's defaults, for verifiers built outside the app (tests, tools). */
export const DEFAULT_FAILURE_BUDGET: FailureBudgetLimits = {
  perKeyId: 10,
  perAddress: 30,
  windowMs: 60_000,
};

/** One argon2 attempt charged against both budgets; handed back to refund it. */
export interface Charge {
  /** Where each failure was counted: the name, or undefined for the shared overflow log. */
  readonly keyId: string | undefined;
  readonly address: string | undefined;
  readonly at: number;
}

/**
 * How many argon2 verifications may fail, per key id and per client address, in a sliding
 * window. argon2 is the one expensive thing an unauthenticated caller can make keygate do,
 * and only a well-formed key for an existing, active id reaches it; this bounds that too.
 *
 * An attempt is charged *before* argon2 runs and refunded when it succeeds (or never ran),
 * so a burst of concurrent forged keys cannot all slip past the check before the first fails.
 *
 * Time comes from the injected clock; memory is bounded (see FailureLog).
 */
export class FailureBudget {
  private readonly byKeyId: FailureLog;
  private readonly byAddress: FailureLog;

  constructor(
    limits: FailureBudgetLimits,
    maxEntries: number,
    private readonly clock: Clock,
  ) {
    this.byKeyId = new FailureLog(limits.perKeyId, limits.windowMs, maxEntries);
    this.byAddress = new FailureLog(limits.perAddress, limits.windowMs, maxEntries);
  }

  /** True when another failure for this id or from this address is not allowed now. */
  exhausted(keyId: string, clientAddress: string): boolean {
    const now = this.clock.now();
    return (
      this.byKeyId.exhausted(keyId, now) ||
      this.byAddress.exhausted(addressBucket(clientAddress), now)
    );
  }

  /** Reserves one attempt, or returns null when either budget is spent. */
  charge(keyId: string, clientAddress: string): Charge | null {
    const now = this.clock.now();
    const bucket = addressBucket(clientAddress);
    if (this.byKeyId.exhausted(keyId, now) || this.byAddress.exhausted(bucket, now)) return null;
    return {
      keyId: this.byKeyId.record(keyId, now),
      address: this.byAddress.record(bucket, now),
      at: now,
    };
  }

  /** The attempt succeeded (or argon2 never ran): it was not a failure. */
  refund(charge: Charge): void {
    this.byKeyId.remove(charge.keyId, charge.at);
    this.byAddress.remove(charge.address, charge.at);
  }
}

/**
 * Failure times per name (a key id or an address bucket), at most `limit` each, kept only for
 * `windowMs`. Names are chosen by attackers (any address they can send from), so the number of
 * names is capped. When the map is full of live entries, new names share one overflow log with
 * the same limit, rather than evicting someone: eviction would let an attacker who rotates
 * through addresses reset their own budget (or any other's) for free. Names with a log of
 * their own keep it until it empties.
 */
class FailureLog {
  private readonly logs = new Map<string, number[]>();
  /** Shared by every name that found no room of its own. */
  private readonly overflow: number[] = [];
  private nextSweep = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly maxEntries: number,
  ) {}

  exhausted(name: string, now: number): boolean {
    const own = this.live(name, now);
    if (own !== undefined) return own.length >= this.limit;
    if (this.logs.size < this.maxEntries) return false;
    return this.prune(this.overflow, now) >= this.limit;
  }

  /** Records a failure now; returns the name it was counted under (undefined: the overflow). */
  record(name: string, now: number): string | undefined {
    let log = this.live(name, now);
    if (log === undefined) {
      if (this.logs.size >= this.maxEntries) this.sweep(now);
      if (this.logs.size >= this.maxEntries) {
        this.overflow.push(now);
        return undefined;
      }
      log = [];
      this.logs.set(name, log);
    }
    log.push(now);
    return name;
  }

  remove(name: string | undefined, at: number): void {
    const log = name === undefined ? this.overflow : this.logs.get(name);
    if (log === undefined) return;
    const index = log.lastIndexOf(at);
    if (index >= 0) log.splice(index, 1);
    if (name !== undefined && log.length === 0) this.logs.delete(name);
  }

  /** The log of `name` with failures older than the window dropped; undefined when empty. */
  private live(name: string, now: number): number[] | undefined {
    const log = this.logs.get(name);
    if (log === undefined) return undefined;
    if (this.prune(log, now) > 0) return log;
    this.logs.delete(name);
    return undefined;
  }

  /** Drops failures older than the window (logs are in time order); returns what is left. */
  private prune(log: number[], now: number): number {
    const cutoff = now - this.windowMs;
    let stale = 0;
    while (stale < log.length && (log[stale] as number) <= cutoff) stale++;
    if (stale > 0) log.splice(0, stale);
    return log.length;
  }

  /**
   * Drops names whose failures all aged out. O(entries), so at most eight times per window;
   * between sweeps, newcomers to a full map go to the overflow log.
   */
  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + this.windowMs / 8;
    for (const name of [...this.logs.keys()]) this.live(name, now);
  }
}
