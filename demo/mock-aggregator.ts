import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small stand-in for the Kubecost Aggregator (port 9004 style: no /model prefix), with
 * response shapes from the Kubecost and OpenCost docs, plus admin routes keygate must block.
 */

const WINDOW = { start: '2026-11-22T00:00:00Z', end: '2026-11-23T00:00:00Z' };

function allocation(
  name: string,
  namespace: string,
  cpuCost: number,
  ramCost: number,
  pvCost: number,
) {
  const totalCost = Number((cpuCost + ramCost + pvCost).toFixed(6));
  return {
    name,
    properties: { cluster: 'cluster-one', namespace },
    window: WINDOW,
    start: WINDOW.start,
    end: WINDOW.end,
    minutes: 1440,
    cpuCores: 0.5,
    cpuCoreRequestAverage: 0.5,
    cpuCoreUsageAverage: 0.0415,
    cpuCoreHours: 12,
    cpuCost,
    cpuEfficiency: 0.083,
    gpuCount: 0,
    gpuHours: 0,
    gpuCost: 0,
    networkCost: 0,
    loadBalancerCost: 0,
    pvBytes: 34359738368,
    pvCost,
    ramBytes: 1073741824,
    ramByteRequestAverage: 1073741824,
    ramByteUsageAverage: 322122547.2,
    ramCost,
    ramEfficiency: 0.3,
    sharedCost: 0,
    externalCost: 0,
    totalCost,
    totalEfficiency: 0.128874,
  };
}

const ALLOCATIONS = {
  kubecost: allocation('kubecost', 'kubecost', 0.379332, 0.101688, 0.042082),
  'ci-runners': allocation('ci-runners', 'ci-runners', 2.815321, 0.894112, 0),
  payments: allocation('payments', 'payments', 1.120331, 0.512009, 0.210007),
  __idle__: allocation('__idle__', '', 2.351858, 1.01688, 0),
};

const ASSETS = {
  'cluster-one/node/ip-10-0-1-17': {
    type: 'node',
    properties: {
      category: 'Compute',
      provider: 'AWS',
      cluster: 'cluster-one',
      name: 'ip-10-0-1-17',
      providerID: 'i-0a1b2c3d4e5f',
    },
    window: WINDOW,
    start: WINDOW.start,
    end: WINDOW.end,
    minutes: 1440,
    nodeType: 'm6i.xlarge',
    cpuCores: 4,
    ramBytes: 17179869184,
    cpuCoreHours: 96,
    ramByteHours: 412316860416,
    GPUHours: 0,
    preemptible: 0,
    discount: 0.3,
    cpuCost: 3.0336,
    gpuCost: 0,
    ramCost: 0.8064,
    adjustment: 0,
    totalCost: 3.84,
  },
  'cluster-one/disk/pvc-16465f04': {
    type: 'disk',
    properties: {
      category: 'Storage',
      provider: 'AWS',
      cluster: 'cluster-one',
      name: 'pvc-16465f04',
    },
    window: WINDOW,
    start: WINDOW.start,
    end: WINDOW.end,
    minutes: 1440,
    byteHours: 824633720832,
    bytes: 34359738368,
    adjustment: 0,
    totalCost: 0.109589,
  },
};

const CLOUD_COSTS = {
  sets: [
    {
      cloudCosts: {
        'AmazonEC2/123456789012': {
          properties: {
            provider: 'AWS',
            accountID: '123456789012',
            service: 'AmazonEC2',
            category: 'Compute',
          },
          window: WINDOW,
          listCost: { cost: 112.4, kubernetesPercent: 0.82 },
          netCost: { cost: 78.68, kubernetesPercent: 0.82 },
          amortizedNetCost: { cost: 80.11, kubernetesPercent: 0.82 },
          invoicedCost: { cost: 78.68, kubernetesPercent: 0.82 },
          amortizedCost: { cost: 113.9, kubernetesPercent: 0.82 },
        },
      },
      window: WINDOW,
      aggregationProperties: ['service', 'accountID'],
    },
  ],
  window: WINDOW,
};

const budgets: Array<Record<string, unknown>> = [
  {
    id: 'b-7f3a',
    name: 'ci-runners monthly',
    type: 'allocations',
    values: { namespace: ['ci-runners'] },
    kind: 'soft',
    interval: 'monthly',
    intervalDay: 1,
    spendLimit: 2500,
    actions: [
      {
        percentage: 80,
        slackWebhooks: [],
        msTeamsWebhooks: [],
        emails: ['platform@example.com'],
        lastFired: '',
      },
    ],
    window: { start: '2026-11-01T00:00:00Z', end: '2026-12-01T00:00:00Z' },
    currentSpend: 1690.42,
  },
];

type Handler = (url: URL, body: string) => { status?: number; data: unknown };

const ROUTES: Record<string, Handler> = {
  'GET /healthz': () => ({ data: null }),
  'GET /allocation': () => ({ data: [ALLOCATIONS] }),
  'GET /allocation/summary': () => ({
    data: {
      step: 86_400_000_000_000,
      sets: [{ allocations: ALLOCATIONS, window: WINDOW }],
      window: WINDOW,
    },
  }),
  'GET /allocation/summary/topline': () => ({
    data: {
      numResults: Object.keys(ALLOCATIONS).length,
      combined: {
        allocations: {
          total: { totalCost: Object.values(ALLOCATIONS).reduce((s, a) => s + a.totalCost, 0) },
        },
        window: WINDOW,
      },
    },
  }),
  'GET /assets': () => ({ data: [ASSETS] }),
  'GET /cloudCost': () => ({ data: CLOUD_COSTS }),
  'GET /budgets': () => ({ data: budgets }),
  'POST /budget': (_url, body) => {
    const budget = {
      id: `b-${Math.random().toString(16).slice(2, 6)}`,
      ...(JSON.parse(body || '{}') as object),
    };
    budgets.push(budget);
    return { data: budget };
  },
  'DELETE /deleteBudget': (url) => {
    const id = url.searchParams.get('id');
    const index = budgets.findIndex((b) => b.id === id);
    if (index >= 0) budgets.splice(index, 1);
    return { data: [] };
  },
  'GET /savings': () => ({
    data: { totalMonthlySavings: 412.77, requestSizing: 280.1, abandonedWorkloads: 132.67 },
  }),
  // Admin and identity routes: the real Aggregator serves these, keygate must never let a key reach them.
  'GET /getProductKey': () => ({ data: { productKey: 'DEMO-PRODUCT-KEY-DO-NOT-LEAK' } }),
  'POST /setApiConfig': () => ({ data: { ok: true } }),
  'GET /serviceAccounts': () => ({ data: [{ name: 'ui-created', key: 'plaintext-would-be-bad' }] }),
  'GET /diagnostic/databaseDirectory': () => ({ data: { path: '/var/configs/waterfowl/duckdb' } }),
};

export async function startMockAggregator(
  port: number,
  host = '127.0.0.1',
): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://mock');
    let body = '';
    for await (const chunk of req) body += chunk;
    const handler = ROUTES[`${req.method} ${url.pathname}`];
    if (!handler) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ code: 404, message: `Error: no route ${req.method} ${url.pathname}` }),
      );
      return;
    }
    if (
      url.pathname !== '/healthz' &&
      req.method === 'GET' &&
      !url.searchParams.has('window') &&
      !url.pathname.startsWith('/budgets')
    ) {
      // The Aggregator answers a missing window with a plain-text 400.
      if (['/allocation', '/assets', '/cloudCost'].includes(url.pathname)) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end("Invalid 'window' parameter: window is required");
        return;
      }
    }
    const { status = 200, data } = handler(url, body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'x-seen-account': String(req.headers['x-keygate-account'] ?? ''),
    });
    res.end(JSON.stringify({ code: status, data }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return { server, url: `http://${host}:${(server.address() as AddressInfo).port}` };
}
