import { readFileSync } from 'node:fs';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { HTTP_METHODS } from '../config/schema.js';
import type { UpstreamFailure } from '../forward/upstream-errors.js';
import type { ExpiryCount } from '../keys/key-expiry.js';
import type { CacheEvent } from '../keys/verifier.js';
import type { RateLimitResult } from '../policy/rate-limit-gate.js';
import type { Operation } from '../store/instrumented-key-store.js';
import { HotCounter, HotHistogram } from './hot-metrics.js';

// Fast denials take tens of microseconds, Aggregator queries up to 300 s: one set of buckets for both.
const REQUEST_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];
const VERIFY_BUCKETS = [0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5];
const KNOWN_METHODS = new Set<string>(HTTP_METHODS);

/**
 * prom-client's default gauges that end in `_total`, which the exposition format keeps for
 * counters (`promtool check metrics` rejects them, and some ingesters turn them into counters).
 * Each has a per-`type` gauge beside it (`..._active_handles{type}` and so on) whose sum is the
 * same number, so nothing is lost by dropping them.
 */
const MISNAMED_DEFAULT_GAUGES = [
  'keygate_nodejs_active_handles_total',
  'keygate_nodejs_active_requests_total',
  'keygate_nodejs_active_resources_total',
];

export const CONFIG_RELOAD_RESULTS = ['ok', 'invalid', 'unchanged'] as const;
export type ConfigReloadResult = (typeof CONFIG_RELOAD_RESULTS)[number];

/** The `account` label when `metrics.accountLabel` is off: one value, same label set. */
export const ALL_ACCOUNTS = '_all';

/**
 * keygate's version, read the way the CLI reads it (package.json beside dist/ and src/).
 * "unknown" rather than a failed start if it cannot be read: build_info is not worth an outage.
 */
export function keygateVersion(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export interface MetricsOptions {
  /** metrics.accountLabel: false folds every account into ALL_ACCOUNTS. */
  accountLabel?: boolean;
  /** An upstream credential file is configured: export its reload counter from the start. */
  credentialReloads?: boolean;
}

/** What one finished request tells the metrics; built by the pipeline's observe stage. */
export interface FinishedRequest {
  /** Rule name, "admin" or "none". */
  readonly route: string;
  readonly method: string | undefined;
  /** The status sent, or 499 when the client left before the response was finished. */
  readonly status: number;
  /** The principal's account, or the account a refused key named; undefined if none. */
  readonly account: string | undefined;
  readonly seconds: number;
  /** Until the upstream answered with headers; undefined when it was not asked or never did. */
  readonly upstreamSeconds: number | undefined;
  /** "allow" or the refusal code; undefined when no auth decision was reached. */
  readonly auth: string | undefined;
}

/** Why a request got no answer from the upstream (label `kind` of keygate_upstream_errors_total). */
export type UpstreamFailureKind = UpstreamFailure | 'saturated' | 'body_timeout';

interface CounterChild {
  inc(value?: number): void;
}

/** Label children by their label values: bounded sets (rule names, methods, codes, accounts). */
function childCache<C>(make: (key: string) => C): (key: string) => C {
  const children = new Map<string, C>();
  return (key) => {
    let child = children.get(key);
    if (child === undefined) {
      child = make(key);
      children.set(key, child);
    }
    return child;
  };
}

/**
 * keygate's metrics, behind intent methods: callers say what happened, this module decides how
 * it is counted. prom-client stays private here, on its own registry (never prom-client's
 * global one). Labels are bounded: `route` is a rule name, "admin" or "none"; `account` a
 * service-account name or "none"; `method` one of the configured methods or "OTHER"; never a
 * path or a key id. With very many accounts, `metrics.accountLabel: false` turns `account` into
 * "_all" (see accountLabel). Label children are bound once per label combination and kept, so
 * the request path does not rebuild label objects per request.
 */
export class Metrics {
  private readonly registry = new Registry();
  private readonly perAccount: boolean;
  private inflight = 0;
  private readQueueDepth: () => number = () => 0;
  private readonly storeUpGauge: Gauge;
  private readonly requests: HotCounter;
  private readonly requestDuration: HotHistogram;
  private readonly upstreamDuration: HotHistogram;
  private readonly authDecisions: HotCounter;
  private readonly rateLimitDecisions: HotCounter;
  private readonly cacheChild: (event: string) => CounterChild;
  private readonly storeErrorChild: (op: string) => CounterChild;
  private readonly upstreamErrorChild: (kind: string) => CounterChild;
  private readonly credentialReloadChild: (result: string) => CounterChild;
  private readonly keyVerifyDuration: Histogram;
  private readonly keysExpiringGauge: Gauge;
  private readonly configReloadChild: (result: string) => CounterChild;
  private readonly configReloadSuccess: Gauge;
  private readonly configReloadSuccessAt: Gauge;
  private readonly keyUsesDroppedCounter: Counter;

  constructor(options: MetricsOptions) {
    this.perAccount = options.accountLabel ?? true;
    const registers = [this.registry];
    // The four per-request metrics count in plain slots (hot-metrics.ts): prom-client would
    // hash their label objects on every request.
    this.requests = new HotCounter(
      'keygate_requests_total',
      'Requests answered, by route rule, method, HTTP status and service account ("none" if unknown; "_all" with metrics.accountLabel off).',
      ['route', 'method', 'code', 'account'],
    );
    this.requestDuration = new HotHistogram(
      'keygate_request_duration_seconds',
      'Time from request to the end of the response, by route rule.',
      ['route'],
      REQUEST_BUCKETS,
    );
    this.upstreamDuration = new HotHistogram(
      'keygate_upstream_duration_seconds',
      'Time until the upstream answered with headers, by route rule.',
      ['route'],
      REQUEST_BUCKETS,
    );
    this.authDecisions = new HotCounter(
      'keygate_auth_decisions_total',
      'Authentication and authorisation outcomes: "allow" or the refusal code.',
      ['result'],
    );
    for (const metric of [
      this.requests,
      this.requestDuration,
      this.upstreamDuration,
      this.authDecisions,
    ]) {
      // prom-client's Registry reads only name, help, type and get() (see hot-metrics.ts).
      this.registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
    }
    // On every forwarded request of a rate-limited account: a hot counter too.
    this.rateLimitDecisions = new HotCounter(
      'keygate_rate_limit_decisions_total',
      'Quota checks of forwarded requests (DESIGN §16): allowed, limited (429), store_down_refused (503, rateLimitStoreDown: refuse), store_down_allowed (forwarded uncounted, rateLimitStoreDown: allow); by service account ("_all" with metrics.accountLabel off).',
      ['result', 'account'],
    );
    this.registry.registerMetric(
      this.rateLimitDecisions as unknown as Parameters<Registry['registerMetric']>[0],
    );
    // A cache hit is counted on every request with a cached key: a hot counter too.
    const keyCacheEvents = new HotCounter(
      'keygate_key_cache_events_total',
      'Verified-key cache events: hit, miss, negative_hit, fill, fill_discarded, invalidation, clear.',
      ['event'],
    );
    this.registry.registerMetric(
      keyCacheEvents as unknown as Parameters<Registry['registerMetric']>[0],
    );
    this.cacheChild = (event) => keyCacheEvents.child(event);
    this.keyVerifyDuration = new Histogram({
      name: 'keygate_key_verify_duration_seconds',
      help: 'argon2id verification time, queueing in the bounded pool included.',
      buckets: VERIFY_BUCKETS,
      registers,
    });
    const queueDepth = () => this.readQueueDepth();
    new Gauge({
      name: 'keygate_key_verify_queue_depth',
      help: 'argon2 verifications waiting for a worker thread.',
      registers,
      collect() {
        this.set(queueDepth());
      },
    });
    const storeErrors = new Counter({
      name: 'keygate_store_errors_total',
      help: 'Key store operations that failed because the store was unreachable, by operation.',
      labelNames: ['op'],
      registers,
    });
    this.storeErrorChild = childCache((op) => storeErrors.labels({ op }));
    this.storeUpGauge = new Gauge({
      name: 'keygate_store_up',
      help: '1 when the key store answered its last health check, else 0.',
      registers,
    });
    const upstreamErrors = new Counter({
      name: 'keygate_upstream_errors_total',
      help: 'Requests the upstream did not answer, by kind (connect_refused, connect_timeout, timeout, reset, dns, other; saturated: refused at the bounded queue; body_timeout: the client body stalled).',
      labelNames: ['kind'],
      registers,
    });
    this.upstreamErrorChild = childCache((kind) => upstreamErrors.labels({ kind }));
    const inflight = () => this.inflight;
    new Gauge({
      name: 'keygate_inflight_requests',
      help: 'Requests being handled right now.',
      registers,
      collect() {
        this.set(inflight());
      },
    });
    // Only with a credential file: a keygate without one does not export the counter.
    const reloads = options.credentialReloads
      ? new Counter({
          name: 'keygate_upstream_credential_reloads_total',
          help: 'Upstream credential file re-reads: "ok" when a changed value was taken, "error" when a re-read failed and the last good value stayed.',
          labelNames: ['result'],
          registers,
        })
      : undefined;
    this.credentialReloadChild = childCache(
      (result) => reloads?.labels({ result }) ?? { inc: () => {} },
    );
    // Per account, never per key: at most accounts × 2 windows × 2 in_use series, and only
    // non-zero counts are set, so an account with nothing expiring exports nothing.
    this.keysExpiringGauge = new Gauge({
      name: 'keygate_keys_expiring',
      help: 'Keys that expire within `within` (1d, 7d; cumulative), by account and whether they were used recently (in_use). Refreshed from the store every ops.keyExpiryRefresh.',
      labelNames: ['account', 'within', 'in_use'],
      registers,
    });
    // Prometheus's own names (prometheus_config_last_reload_*), so the usual alert carries over:
    // keygate_config_last_reload_successful == 0 for a while means the file on disk is not
    // what runs. All three exist from start-up (the start counts as a successful load).
    const configReloads = new Counter({
      name: 'keygate_config_reloads_total',
      help: 'Config reloads (SIGHUP or a change of the file): "ok" applied, "invalid" refused (the running config stays), "unchanged" same content as the running config.',
      labelNames: ['result'],
      registers,
    });
    // Every result from the start (0): rate() and increase() need the series before the first one.
    for (const result of CONFIG_RELOAD_RESULTS) configReloads.labels({ result }).inc(0);
    this.configReloadChild = childCache((result) => configReloads.labels({ result }));
    this.configReloadSuccess = new Gauge({
      name: 'keygate_config_last_reload_successful',
      help: 'Whether the last config reload attempt succeeded (1) or was refused (0).',
      registers,
    });
    this.configReloadSuccess.set(1);
    this.configReloadSuccessAt = new Gauge({
      name: 'keygate_config_last_reload_success_timestamp_seconds',
      help: 'When the running config was last loaded successfully (start-up or reload), Unix seconds.',
      registers,
    });
    this.configReloadSuccessAt.set(Date.now() / 1000);
    // No per-key series for request counts (one per key is unbounded cardinality): they live in
    // the store (keys list). Only what the bounded counter could not hold is counted here.
    this.keyUsesDroppedCounter = new Counter({
      name: 'keygate_key_uses_dropped_total',
      help: "Admitted requests not added to their key's request_count: more distinct keys were used between two flushes than the counter holds.",
      registers,
    });
    new Gauge({
      name: 'keygate_build_info',
      help: 'Always 1; the labels say which keygate version runs on which Node.js.',
      labelNames: ['version', 'node'],
      registers,
    }).set({ version: keygateVersion(), node: process.version }, 1);
    collectDefaultMetrics({ register: this.registry, prefix: 'keygate_' });
    for (const name of MISNAMED_DEFAULT_GAUGES) this.registry.removeSingleMetric(name);
  }

  /** Where keygate_key_verify_queue_depth is read from: the key runtime's pool, once built. */
  watchQueueDepth(read: () => number): void {
    this.readQueueDepth = read;
  }

  /** A request arrived (keygate_inflight_requests). */
  requestStarted(): void {
    this.inflight++;
  }

  /** A request's response is done (or its client left): counted once, from its outcome. */
  requestFinished(r: FinishedRequest): void {
    this.inflight--;
    const route = r.route;
    // Label values hold no "\n" (rule and account names are restricted, methods are a closed
    // set or "OTHER", codes are digits), so joined label values name one child each.
    this.requests
      .child(route, Metrics.method(r.method), String(r.status), this.accountLabel(r.account))
      .inc();
    this.requestDuration.child(route).observe(r.seconds);
    if (r.upstreamSeconds !== undefined)
      this.upstreamDuration.child(route).observe(r.upstreamSeconds);
    if (r.auth !== undefined) this.authDecisions.child(r.auth).inc();
  }

  /** A quota check's outcome (keygate_rate_limit_decisions_total). */
  rateLimitDecided(result: RateLimitResult, account: string): void {
    this.rateLimitDecisions.child(result, this.accountLabel(account)).inc();
  }

  /** A store operation failed because the store was unreachable. */
  storeFailed(op: Operation): void {
    this.storeErrorChild(op).inc();
  }

  /** The store's last health check: answered or not (keygate_store_up). */
  storeUp(up: boolean): void {
    this.storeUpGauge.set(up ? 1 : 0);
  }

  /** The upstream gave no answer to a request (or was never asked: saturated, body_timeout). */
  upstreamFailed(kind: UpstreamFailureKind): void {
    this.upstreamErrorChild(kind).inc();
  }

  /** A verified-key cache event; `invalidation` and `clear` come from the invalidation bus. */
  keyCacheEvent(event: CacheEvent | 'invalidation' | 'clear'): void {
    this.cacheChild(event).inc();
  }

  /** One argon2 verification finished, queueing included (its _count counts argon2 runs). */
  keyVerified(seconds: number): void {
    this.keyVerifyDuration.observe(seconds);
  }

  /** The upstream credential file was re-read: a changed value taken, or a failed re-read. */
  credentialReloaded(result: 'ok' | 'error'): void {
    this.credentialReloadChild(result).inc();
  }

  /** A config reload attempt ended (see keygate_config_reloads_total). */
  configReloaded(result: ConfigReloadResult, atSeconds: number): void {
    this.configReloadChild(result).inc();
    if (result === 'invalid') this.configReloadSuccess.set(0);
    else {
      this.configReloadSuccess.set(1);
      if (result === 'ok') this.configReloadSuccessAt.set(atSeconds);
    }
  }

  /** Requests the per-key request counter could not hold (keygate_key_uses_dropped_total). */
  keyUsesDropped(requests: number): void {
    this.keyUsesDroppedCounter.inc(requests);
  }

  /**
   * Fresh counts of keys expiring soon: replaces the previous ones entirely, so accounts whose
   * keys were renewed, revoked or expired drop out. With metrics.accountLabel off, summed
   * under "_all".
   */
  keysExpiring(counts: readonly ExpiryCount[]): void {
    const sums = new Map<string, { labels: Record<string, string>; value: number }>();
    for (const c of counts) {
      const labels = {
        account: this.accountLabel(c.account),
        within: c.within,
        in_use: String(c.inUse),
      };
      const id = `${labels.account}\n${labels.within}\n${labels.in_use}`;
      const entry = sums.get(id);
      if (entry) entry.value += c.count;
      else sums.set(id, { labels, value: c.count });
    }
    this.keysExpiringGauge.reset();
    for (const { labels, value } of sums.values()) this.keysExpiringGauge.set(labels, value);
  }

  /** The exposition text for /metrics. */
  async render(): Promise<string> {
    // prom-client writes NaN as "Nan" (the event-loop lag before its first sample); the
    // exposition format spells it "NaN", and strict parsers refuse anything else.
    return (await this.registry.metrics()).replace(/ Nan$/gm, ' NaN');
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The `account` label value: the account, "none" before one is known, or "_all" when
   * `metrics.accountLabel` is off. The label itself stays either way, so queries, recording
   * rules and dashboards (`sum by (code)`) work unchanged whichever way a deployment sets it,
   * and one keygate never exports the same metric with two label sets.
   */
  accountLabel(account: string | undefined): string {
    if (!this.perAccount) return ALL_ACCOUNTS;
    return account ?? 'none';
  }

  static method(method: string | undefined): string {
    return method !== undefined && KNOWN_METHODS.has(method) ? method : 'OTHER';
  }
}
