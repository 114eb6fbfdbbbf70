import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FilterNode } from '../src/policy/filter-v2.js';
import {
  compileMockFilter,
  type FieldReader,
  type FilterKind,
  MockFilterError,
  matches,
} from './mock-filter.js';

/**
 * A small stand-in for the Kubecost Aggregator (port 9004 style: no /model prefix), with
 * response shapes from the Kubecost and OpenCost docs, plus admin routes keygate must block.
 * It applies `filter` (Kubecost's filter language v2, demo/mock-filter.ts) on allocation,
 * assets and cloud cost for real, so a team-scoped key visibly sees only its own costs.
 */

const WINDOW = { start: '2026-11-22T00:00:00Z', end: '2026-11-23T00:00:00Z' };

function allocation(
  name: string,
  namespace: string,
  cpuCost: number,
  ramCost: number,
  pvCost: number,
  cluster = 'cluster-one',
  labels: Record<string, string> = {},
) {
  const totalCost = Number((cpuCost + ramCost + pvCost).toFixed(6));
  return {
    name,
    properties: { cluster, namespace, labels },
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

type Allocation = ReturnType<typeof allocation>;
const ALLOCATIONS: Record<string, Allocation> = {
  kubecost: allocation('kubecost', 'kubecost', 0.379332, 0.101688, 0.042082, 'cluster-one', {
    app: 'cost-analyzer',
    team: 'platform',
  }),
  'ci-runners': allocation('ci-runners', 'ci-runners', 2.815321, 0.894112, 0, 'cluster-one', {
    team: 'platform',
  }),
  payments: allocation('payments', 'payments', 1.120331, 0.512009, 0.210007, 'cluster-one', {
    app: 'checkout',
    team: 'payments',
  }),
  'payments-eu': allocation('payments-eu', 'payments-eu', 0.804117, 0.30112, 0.1, 'cluster-two', {
    app: 'checkout',
    team: 'payments',
  }),
  __idle__: allocation('__idle__', '', 2.351858, 1.01688, 0),
};

type Asset = { type: string; properties: Record<string, string> } & Record<string, unknown>;
const ASSETS: Record<string, Asset> = {
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

/** Keeps the entries of a name → item map that the filter selects. */
function pick<T>(
  items: Record<string, T>,
  filter: FilterNode | undefined,
  reader: (item: T) => FieldReader,
): Record<string, T> {
  return Object.fromEntries(Object.entries(items).filter(([, v]) => matches(filter, reader(v))));
}

const labelsOf = (labels: Record<string, string> | undefined) =>
  new Map(Object.entries(labels ?? {}));

const allocationReader =
  (a: Allocation): FieldReader =>
  (field) =>
    field === 'label'
      ? labelsOf(a.properties.labels)
      : field === 'cluster' || field === 'namespace'
        ? a.properties[field]
        : undefined;

const assetReader =
  (a: Asset): FieldReader =>
  (field) =>
    field === 'label'
      ? labelsOf(undefined)
      : field === 'assetType'
        ? a.type
        : Object.hasOwn(a.properties, field)
          ? a.properties[field]
          : undefined;

type CloudCostItem = { properties: Record<string, string> };
const cloudCostReader =
  (c: CloudCostItem): FieldReader =>
  (field) =>
    field === 'label'
      ? labelsOf(undefined)
      : Object.hasOwn(c.properties, field)
        ? c.properties[field]
        : undefined;

function filteredCloudCosts(filter: FilterNode | undefined) {
  return {
    ...CLOUD_COSTS,
    sets: CLOUD_COSTS.sets.map((set) => ({
      ...set,
      cloudCosts: pick(set.cloudCosts as Record<string, CloudCostItem>, filter, cloudCostReader),
    })),
  };
}

type Handler = (
  url: URL,
  body: string,
  filter: FilterNode | undefined,
) => { status?: number; data: unknown };

const ROUTES: Record<string, Handler> = {
  'GET /healthz': () => ({ data: null }),
  'GET /allocation': (_u, _b, f) => ({ data: [pick(ALLOCATIONS, f, allocationReader)] }),
  'GET /allocation/summary': (_u, _b, f) => ({
    data: {
      step: 86_400_000_000_000,
      sets: [{ allocations: pick(ALLOCATIONS, f, allocationReader), window: WINDOW }],
      window: WINDOW,
    },
  }),
  'GET /allocation/summary/topline': (_u, _b, f) => {
    const selected = Object.values(pick(ALLOCATIONS, f, allocationReader));
    return {
      data: {
        numResults: selected.length,
        combined: {
          allocations: { total: { totalCost: selected.reduce((s, a) => s + a.totalCost, 0) } },
          window: WINDOW,
        },
      },
    };
  },
  'GET /assets': (_u, _b, f) => ({ data: [pick(ASSETS, f, assetReader)] }),
  'GET /cloudCost': (_u, _b, f) => ({ data: filteredCloudCosts(f) }),
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

/** The filter kind each filtering route serves (the others ignore `filter`). */
const FILTER_KIND: Record<string, FilterKind> = {
  '/allocation': 'allocation',
  '/allocation/summary': 'allocation',
  '/allocation/summary/topline': 'allocation',
  '/assets': 'assets',
  '/cloudCost': 'cloudCost',
};

export interface MockAnswer {
  status: number;
  contentType: string;
  body: string;
}

/**
 * Answers one request, without a socket (the unit tests call this). `filter` is read as Go's
 * url.Values.Get reads it: the first `filter` parameter, "+" decoded as a space (URLSearchParams
 * does both); an empty one filters nothing; one that does not parse, or names a field the kind
 * does not have, is a plain-text 400 like the Aggregator's "Invalid 'filter' parameter".
 */
export function answerMock(method: string, url: URL, body: string): MockAnswer {
  const handler = ROUTES[`${method} ${url.pathname}`];
  if (!handler) {
    return {
      status: 404,
      contentType: 'application/json',
      body: JSON.stringify({ code: 404, message: `Error: no route ${method} ${url.pathname}` }),
    };
  }
  if (
    url.pathname !== '/healthz' &&
    method === 'GET' &&
    !url.searchParams.has('window') &&
    !url.pathname.startsWith('/budgets')
  ) {
    // The Aggregator answers a missing window with a plain-text 400.
    if (['/allocation', '/assets', '/cloudCost'].includes(url.pathname)) {
      return {
        status: 400,
        contentType: 'text/plain',
        body: "Invalid 'window' parameter: window is required",
      };
    }
  }
  let filter: FilterNode | undefined;
  const kind = Object.hasOwn(FILTER_KIND, url.pathname) ? FILTER_KIND[url.pathname] : undefined;
  if (kind !== undefined && method === 'GET') {
    try {
      filter = compileMockFilter(kind, url.searchParams.get('filter') ?? '');
    } catch (err) {
      if (!(err instanceof MockFilterError)) throw err;
      return {
        status: 400,
        contentType: 'text/plain',
        body: `Invalid 'filter' parameter: ${err.message}`,
      };
    }
  }
  const { status = 200, data } = handler(url, body, filter);
  return { status, contentType: 'application/json', body: JSON.stringify({ code: status, data }) };
}

export async function startMockAggregator(
  port: number,
  host = '127.0.0.1',
): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://mock');
    let body = '';
    for await (const chunk of req) body += chunk;
    const answer = answerMock(req.method ?? 'GET', url, body);
    res.writeHead(answer.status, {
      'content-type': answer.contentType,
      'x-seen-account': String(req.headers['x-keygate-account'] ?? ''),
    });
    res.end(answer.body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return { server, url: `http://${host}:${(server.address() as AddressInfo).port}` };
}
