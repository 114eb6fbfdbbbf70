import { readFileSync } from 'node:fs';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { HTTP_METHODS } from '../config/schema.js';

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
  verifyQueueDepth: () => number;
  /** metrics.accountLabel: false folds every account into ALL_ACCOUNTS. */
  accountLabel?: boolean;
}

/**
 * keygate's metrics on its own registry (never prom-client's global one). Labels are bounded:
 * `route` is a rule name, "admin" or "none"; `account` a service-account name or "none";
 * `method` one of the configured methods or "OTHER"; never a path or a key id. With very many
 * accounts, `metrics.accountLabel: false` turns `account` into "_all" (see accountLabel).
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'method' | 'code' | 'account'>;
  readonly requestDuration: Histogram<'route'>;
  readonly upstreamDuration: Histogram<'route'>;
  readonly authDecisions: Counter<'result'>;
  readonly keyCacheEvents: Counter<'event'>;
  readonly keyVerifyDuration: Histogram;
  readonly storeErrors: Counter<'op'>;
  readonly storeUp: Gauge;
  readonly upstreamErrors: Counter<'kind'>;
  readonly inflight: Gauge;
  private readonly perAccount: boolean;

  constructor(options: MetricsOptions) {
    this.perAccount = options.accountLabel ?? true;
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'keygate_requests_total',
      help: 'Requests answered, by route rule, method, HTTP status and service account ("none" if unknown; "_all" with metrics.accountLabel off).',
      labelNames: ['route', 'method', 'code', 'account'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'keygate_request_duration_seconds',
      help: 'Time from request to the end of the response, by route rule.',
      labelNames: ['route'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.upstreamDuration = new Histogram({
      name: 'keygate_upstream_duration_seconds',
      help: 'Time until the upstream answered with headers, by route rule.',
      labelNames: ['route'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.authDecisions = new Counter({
      name: 'keygate_auth_decisions_total',
      help: 'Authentication and authorisation outcomes: "allow" or the refusal code.',
      labelNames: ['result'],
      registers,
    });
    this.keyCacheEvents = new Counter({
      name: 'keygate_key_cache_events_total',
      help: 'Verified-key cache events: hit, miss, negative_hit, fill, fill_discarded, invalidation, clear.',
      labelNames: ['event'],
      registers,
    });
    this.keyVerifyDuration = new Histogram({
      name: 'keygate_key_verify_duration_seconds',
      help: 'argon2id verification time, queueing in the bounded pool included.',
      buckets: VERIFY_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'keygate_key_verify_queue_depth',
      help: 'argon2 verifications waiting for a worker thread.',
      registers,
      collect() {
        this.set(options.verifyQueueDepth());
      },
    });
    this.storeErrors = new Counter({
      name: 'keygate_store_errors_total',
      help: 'Key store operations that failed because the store was unreachable, by operation.',
      labelNames: ['op'],
      registers,
    });
    this.storeUp = new Gauge({
      name: 'keygate_store_up',
      help: '1 when the key store answered its last health check, else 0.',
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'keygate_upstream_errors_total',
      help: 'Requests the upstream did not answer, by kind (connect_refused, connect_timeout, timeout, reset, dns, other; saturated: refused at the bounded queue; body_timeout: the client body stalled).',
      labelNames: ['kind'],
      registers,
    });
    this.inflight = new Gauge({
      name: 'keygate_inflight_requests',
      help: 'Requests being handled right now.',
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
