import { type Clock, unixSeconds } from '../shared/clock.js';
import type { KeyRecord, KeyStore } from '../store/key-store.js';

/** The windows keygate_keys_expiring counts, each cumulative ("7d" includes "1d"). */
export const EXPIRY_WINDOWS = [
  { within: '1d', seconds: 86_400 },
  { within: '7d', seconds: 7 * 86_400 },
] as const;

export type ExpiryWindow = (typeof EXPIRY_WINDOWS)[number]['within'];

/** One gauge value: how many of an account's keys expire within a window, used or not. */
export interface ExpiryCount {
  readonly account: string;
  readonly within: ExpiryWindow;
  readonly inUse: boolean;
  readonly count: number;
}

/**
 * A key that still works and stops working within `withinSeconds`: never a revoked key, an
 * already expired one or one that never expires (expiresAt 0).
 */
export function expiresWithin(key: KeyRecord, nowSeconds: number, withinSeconds: number): boolean {
  return (
    key.revokedAt === 0 && key.expiresAt > nowSeconds && key.expiresAt - nowSeconds <= withinSeconds
  );
}

/** Every key of every account that expires within `withinSeconds`, soonest first. */
export async function listExpiringKeys(
  store: KeyStore,
  nowSeconds: number,
  withinSeconds: number,
  account?: string,
): Promise<KeyRecord[]> {
  const accounts =
    account === undefined ? (await store.listAccounts()).map((a) => a.name) : [account];
  const found: KeyRecord[] = [];
  for (const name of accounts) {
    for (const key of await store.listKeys(name))
      if (expiresWithin(key, nowSeconds, withinSeconds)) found.push(key);
  }
  return found.sort((a, b) => a.expiresAt - b.expiresAt || a.id.localeCompare(b.id));
}

/**
 * Counts per (account, window, in use): only non-zero counts are returned, so an account whose
 * keys were renewed, revoked or have expired drops out of the metric at the next refresh.
 * "In use" = last used within `inUseSeconds` (last_used_at is written at most once a minute).
 */
export function countExpiring(
  keys: readonly KeyRecord[],
  nowSeconds: number,
  inUseSeconds: number,
): ExpiryCount[] {
  const counts = new Map<
    string,
    { account: string; within: ExpiryWindow; inUse: boolean; count: number }
  >();
  for (const key of keys) {
    const inUse = key.lastUsedAt > 0 && nowSeconds - key.lastUsedAt <= inUseSeconds;
    for (const w of EXPIRY_WINDOWS) {
      if (!expiresWithin(key, nowSeconds, w.seconds)) continue;
      // "\n" cannot occur in an account name or a window: one entry per combination.
      const id = `${key.account}\n${w.within}\n${inUse}`;
      const entry = counts.get(id);
      if (entry) entry.count++;
      else counts.set(id, { account: key.account, within: w.within, inUse, count: 1 });
    }
  }
  return [...counts.values()];
}

export interface KeyExpiryMonitorOptions {
  store: KeyStore;
  clock: Clock;
  /** ops.keyExpiryRefresh: how often the store is read. */
  intervalMs: number;
  /** ops.keyInUseWithin: a key used this recently counts as in use. */
  inUseSeconds: number;
  /** Receives the fresh counts (Metrics.keysExpiring). */
  publish: (counts: readonly ExpiryCount[]) => void;
  onError?: (err: unknown) => void;
}

/** A repeating timer, behind an interface so tests drive refreshes themselves. */
export interface Ticker {
  every(ms: number, run: () => void): { stop(): void };
}

export const systemTicker: Ticker = {
  every(ms, run) {
    // unref'd: the refresh never keeps a process alive (CLI, tests, shutdown).
    const timer = setInterval(run, ms);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  },
};

/**
 * Refreshes keygate_keys_expiring from the store off the request path: one scan of all accounts
 * every intervalMs (default 5m). A failed scan keeps the last counts (and is logged): a store
 * outage has its own alert, and dropping the counts would silence this one.
 */
export class KeyExpiryMonitor {
  private handle: { stop(): void } | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly options: KeyExpiryMonitorOptions,
    private readonly ticker: Ticker = systemTicker,
  ) {}

  start(): void {
    this.handle ??= this.ticker.every(this.options.intervalMs, () => void this.refresh());
    void this.refresh();
  }

  /** One scan; concurrent calls share it. */
  refresh(): Promise<void> {
    this.running ??= this.scan().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  async close(): Promise<void> {
    this.handle?.stop();
    this.handle = undefined;
    await this.running;
  }

  private async scan(): Promise<void> {
    const { store, clock, inUseSeconds, publish, onError } = this.options;
    try {
      const now = unixSeconds(clock);
      const widest = EXPIRY_WINDOWS[EXPIRY_WINDOWS.length - 1]?.seconds ?? 0;
      const keys = await listExpiringKeys(store, now, widest);
      publish(countExpiring(keys, now, inUseSeconds));
    } catch (err) {
      onError?.(err);
    }
  }
}
