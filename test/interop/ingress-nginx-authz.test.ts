import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  type AuthzBackend,
  authzDataPlaneCases,
  startAuthzBackend,
} from '../helpers/authz-data-plane.js';
import { renderChartKind } from '../helpers/helm.js';
import { send } from '../helpers/http.js';
import { ingressNginxServerBlock } from '../helpers/ingress-nginx.js';
import { type RunningNginx, startNginx } from '../helpers/nginx.js';

// The shipped Ingress, exactly as an operator applies it; the location ingress-nginx renders
// from its annotations runs in a real nginx (test/helpers/ingress-nginx.ts says how it is built).
const INGRESS = readFileSync(
  new URL('../../deploy/authz/ingress-nginx/aggregator-ingress.yaml', import.meta.url),
  'utf8',
);

/**
 * The Ingress the chart renders with `config.mode=authz, authz.ingressNginx.enabled=true` and
 * nothing else: what an operator gets from `helm install` is run in nginx too, not only the
 * hand-written file.
 */
function chartIngress(): string {
  const ingresses = renderChartKind<{ metadata?: { name?: string } }>('Ingress', [
    'config.mode=authz',
    'authz.ingressNginx.enabled=true',
    'redis.url=redis://r:6379',
  ]);
  expect(ingresses.map((d) => d.metadata?.name)).toEqual(['kg-keygate-aggregator']);
  return stringify(ingresses[0]);
}

let backend: AuthzBackend;
let nginx: RunningNginx;
let url: string;
let chartNginx: RunningNginx;
let chartUrl: string;

beforeAll(async () => {
  backend = await startAuthzBackend('ingress-team');
  const targets = { keygate: backend.keygateHost, aggregator: backend.aggregatorHost };
  nginx = await startNginx(() => ingressNginxServerBlock(INGRESS, targets));
  url = `http://127.0.0.1:${nginx.port}`;
  chartNginx = await startNginx(() => ingressNginxServerBlock(chartIngress(), targets));
  chartUrl = `http://127.0.0.1:${chartNginx.port}`;
});

afterAll(async () => {
  await nginx?.stop();
  await chartNginx?.stop();
  await backend?.close();
});

describe('ingress-nginx annotations in front of the Aggregator, keygate answering (shipped Ingress)', () => {
  authzDataPlaneCases(() => ({ ...backend, url, account: 'ingress-team' }), {
    keygateBodies: false,
    // rewrite-target /$2: the Aggregator serves the API without Kubecost's /model prefix.
    upstreamPath: (p) => p.replace(/^\/model/, ''),
    // ingress-nginx's auth location (no snippets) cannot hide a client's X-Forwarded-Uri:
    // keygate sees two forms that disagree, 400, which auth_request turns into 500. Closed.
    clientFormStatuses: [500, 500],
  });

  it('keygate judges the path the client sent (/model/...), not the rewritten one', async () => {
    backend.upstream.reset();
    // /model/etl/run is a write route: the reader is refused even though the Aggregator would
    // see /etl/run, which matches no rule at all.
    const res = await send(url, '/model/etl/run', { headers: { 'x-api-key': backend.reader } });
    expect(res.status).toBe(403);
    expect(backend.upstream.requests).toHaveLength(0);
  });
});

describe('the Ingress the Helm chart renders (config.mode=authz, authz.ingressNginx.enabled)', () => {
  authzDataPlaneCases(() => ({ ...backend, url: chartUrl, account: 'ingress-team' }), {
    keygateBodies: false,
    upstreamPath: (p) => p.replace(/^\/model/, ''),
    // ingress-nginx's auth location (no snippets) cannot hide a client's X-Forwarded-Uri:
    // keygate sees two forms that disagree, 400, which auth_request turns into 500. Closed.
    clientFormStatuses: [500, 500],
  });
});

describe('the ingress-nginx model refuses what the shipped Ingress must not rely on', () => {
  it('snippet annotations, auth-keepalive and unreadable header names are errors', () => {
    const targets = { keygate: '127.0.0.1:1', aggregator: '127.0.0.1:2' };
    const withAnnotation = (line: string) =>
      INGRESS.replace('  annotations:\n', `  annotations:\n    ${line}\n`);
    expect(() =>
      ingressNginxServerBlock(
        withAnnotation(
          'nginx.ingress.kubernetes.io/configuration-snippet: "more_clear_input_headers x;"',
        ),
        targets,
      ),
    ).toThrow(/snippet/);
    expect(() =>
      ingressNginxServerBlock(
        withAnnotation('nginx.ingress.kubernetes.io/auth-keepalive: "10"'),
        targets,
      ),
    ).toThrow(/not modelled/);
    expect(() =>
      ingressNginxServerBlock(INGRESS.replace('X-Keygate-Role,', 'X-Keygate Role,'), targets),
    ).toThrow(/refuses header name/);
  });
});
