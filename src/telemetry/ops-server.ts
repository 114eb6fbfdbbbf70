import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorHeaders, type KeygateError, toErrorBody } from '../errors.js';
import type { KeyStore } from '../store/key-store.js';
import type { Metrics } from './metrics.js';
import type { MetricsAuth } from './metrics-auth.js';

/**
 * How long a readiness check waits for the store. Kubelet's default probe timeout is 1 s: a
 * Redis that hangs (paused, swapping, a blackholed route) must turn /readyz into a prompt 503,
 * not into a probe timeout that the kubelet counts as a failure with no reason given.
 */
const READINESS_PING_TIMEOUT_MS = 400;

/**
 * Whether this replica should receive traffic: not while draining, not while the store is
 * unreachable (a replica that can only answer 503 for new keys belongs out of the rotation).
 */
export class Readiness {
  draining = false;
  /**
   * The one store ping in flight. Probes, scrapes and the periodic store check all wait on it
   * rather than start their own, so a hanging store never collects a pile of pending pings.
   */
  private ping: Promise<void> | null = null;

  constructor(
    private readonly store: KeyStore,
    private readonly metrics: Pick<Metrics, 'storeUp'>,
    private readonly timeoutMs = READINESS_PING_TIMEOUT_MS,
  ) {}

  async check(): Promise<{ ready: boolean; reason?: string }> {
    if (this.draining) return { ready: false, reason: 'draining' };
    // Through a promise chain, so a store whose ping throws synchronously still just refuses.
    this.ping ??= Promise.resolve()
      .then(() => this.store.ping())
      .finally(() => {
        this.ping = null;
      });
    const ping = this.ping;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.timeoutMs);
    });
    try {
      const outcome = await Promise.race([ping.then(() => 'ok' as const), timedOut]);
      if (outcome === 'timeout') {
        this.metrics.storeUp(false);
        return { ready: false, reason: 'key store not answering' };
      }
      this.metrics.storeUp(true);
      return { ready: true };
    } catch {
      this.metrics.storeUp(false);
      return { ready: false, reason: 'key store unreachable' };
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The operations listener, on its own port so that its paths never shadow upstream paths on
 * the proxy port and it need not be exposed through ingress. /healthz and /readyz stay open
 * (probes carry no credentials, and they reveal nothing); /metrics names accounts and their
 * traffic, so it takes a bearer token when one is configured (`metricsAuth`).
 */
export function createOpsServer(
  metrics: Metrics,
  readiness: Readiness,
  metricsAuth?: MetricsAuth,
): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, body: unknown) => {
      const json = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(json);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return reply(405, { status: 'method not allowed' });
    switch (path) {
      case '/healthz':
        return reply(200, { status: 'ok' });
      case '/readyz':
        void readiness
          .check()
          .then((r) =>
            reply(
              r.ready ? 200 : 503,
              r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason },
            ),
          );
        return;
      case '/metrics':
        try {
          metricsAuth?.check(req.rawHeaders);
        } catch (err) {
          const refusal = err as KeygateError;
          res.writeHead(refusal.status, {
            'content-type': 'application/json',
            'cache-control': 'no-store',
            ...errorHeaders(refusal),
          });
          res.end(JSON.stringify(toErrorBody(refusal, randomUUID())));
          return;
        }
        metrics.render().then(
          (text) => {
            res.writeHead(200, { 'content-type': metrics.contentType });
            res.end(text);
          },
          () => reply(500, { status: 'metrics unavailable' }),
        );
        return;
      default:
        return reply(404, { status: 'not found' });
    }
  });
}

export function listenOn(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
