import { parsePrometheusText } from './prom-text.js';

interface HasMetrics {
  app: { metrics: { render(): Promise<string> } };
}

/** The gateway's /metrics text, parsed (keys are `name{label="value",…}`, labels sorted). */
export async function scrape(gw: HasMetrics): Promise<Map<string, number>> {
  return parsePrometheusText(await gw.app.metrics.render());
}

/** One sample from the gateway's /metrics text; 0 when the series does not exist yet. */
export async function sample(gw: HasMetrics, key: string): Promise<number> {
  return (await scrape(gw)).get(key) ?? 0;
}

/** argon2 runs so far: every verification that reached argon2 observes its duration once. */
export const ARGON2_RUNS = 'keygate_key_verify_duration_seconds_count';
/** Look-ups that got past the verified-key cache (each reads the store unless throttled). */
export const CACHE_MISSES = 'keygate_key_cache_events_total{event="miss"}';
/** argon2 verifications waiting for a worker thread right now (the pool's queue). */
export const QUEUE_DEPTH = 'keygate_key_verify_queue_depth';
/** Invalidations this replica applied to its verifier (its own writes and other replicas'). */
export const INVALIDATIONS = 'keygate_key_cache_events_total{event="invalidation"}';
