import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { AccountFilters } from '../../src/keys/account-filters.js';
import { type Gateway, startGateway, TEST_ROUTES, testConfig } from '../helpers/gateway.js';
import { rawHttp, send } from '../helpers/http.js';
import { MemoryKeyStore } from '../helpers/memory-key-store.js';
import { until } from '../helpers/until.js';
import { RecordingUpstream } from '../helpers/upstream.js';

/**
 * Team-scoped keys through the whole pipeline (DESIGN §16): a real upstream records what keygate
 * forwards. A filtered account's filter is ANDed into `filter`, every other byte of the query is
 * the client's; refusals are 403 filter_required / 400 invalid_filter and reach no upstream.
 * Unfiltered accounts see today's behaviour, byte for byte.
 */

const TEAM = 'namespace:"team-a"';
const ROUTES = TEST_ROUTES.map((r) =>
  r.name === 'allocation'
    ? { ...r, filter: 'allocation' }
    : r.name === 'assets'
      ? { ...r, filter: 'assets' }
      : r,
);

/** Go's url.ParseQuery, written here from its rules: split on "&", first "=", "+" is a space. */
function goParams(query: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const part of query.split('&')) {
    if (part === '' || part.includes(';')) continue;
    const eq = part.indexOf('=');
    try {
      const dec = (s: string) => decodeURIComponent(s.replaceAll('+', ' '));
      out.push([
        dec(eq === -1 ? part : part.slice(0, eq)),
        dec(eq === -1 ? '' : part.slice(eq + 1)),
      ]);
    } catch {
      // Go drops a pair with a bad escape
    }
  }
  return out;
}

let upstream: RecordingUpstream;
let store: MemoryKeyStore;
let gw: Gateway;
let teamKey: string;
let openKey: string;
let teamAdminKey: string;

async function account(name: string, role: string, filters?: AccountFilters): Promise<string> {
  const now = Math.floor(Date.now() / 1000) - 60;
  await store.createAccount({
    name,
    role,
    description: '',
    disabled: false,
    createdAt: now,
    updatedAt: now,
    ...(filters === undefined ? {} : { filters }),
  });
  return (await gw.issue(name, role)).key;
}

beforeAll(async () => {
  upstream = await RecordingUpstream.start();
  store = new MemoryKeyStore();
  gw = await startGateway({
    config: testConfig(upstream.url, { routes: ROUTES, listen: { maxInflightPerAccount: 1 } }),
    store,
  });
  teamKey = await account('team-a', 'reader', { allocation: TEAM });
  openKey = await account('everyone', 'reader');
  teamAdminKey = await account('team-admin', 'admin', { allocation: TEAM });
});

afterAll(async () => {
  await gw.close();
  await upstream.close();
});

beforeEach(() => {
  upstream.requests.length = 0;
});

/**
 * The request target exactly as written (raw socket): an HTTP client would percent-encode '"'
 * and cut a '#…' off, and these tests are about the bytes keygate receives.
 */
const get = (path: string, key: string, method = 'GET') =>
  rawHttp(
    gw.port,
    `${method} ${path} HTTP/1.1\r\nHost: keygate\r\nX-API-KEY: ${key}\r\nConnection: close\r\n\r\n`,
  );

/** The one request the upstream saw: its raw query, split on "&" as sent. */
function forwardedQuery(): string {
  expect(upstream.requests).toHaveLength(1);
  const url = upstream.requests[0]?.url ?? '';
  const q = url.indexOf('?');
  return q === -1 ? '' : url.slice(q + 1);
}

function filtersSeen(query: string): string[] {
  return goParams(query)
    .filter(([k]) => k === 'filter')
    .map(([, v]) => v);
}

describe('a filtered account on a filter route', () => {
  it('the upstream sees (account)+(client) in one filter, and every other parameter byte for byte', async () => {
    const others = [
      'window=7d',
      'aggregate=namespace,label:app',
      'shareLabels=env%3Astaging',
      'accumulate=true',
    ];
    const query = [others[0], others[1], 'filter=cluster%3A%22c1%22', others[2], others[3]].join(
      '&',
    );
    const res = await get(`/model/allocation/summary?${query}`, teamKey);
    expect(res.status).toBe(200);
    const seen = forwardedQuery();
    expect(upstream.requests[0]?.url.startsWith('/allocation/summary?')).toBe(true);
    expect(seen.split('&').filter((p) => !p.startsWith('filter='))).toEqual(others);
    expect(filtersSeen(seen)).toEqual([`(${TEAM})+(cluster:"c1")`]);
  });

  it("no client filter: the account's filter alone", async () => {
    expect((await get('/model/allocation?window=1d', teamKey)).status).toBe(200);
    const seen = forwardedQuery();
    expect(seen.startsWith('window=1d&')).toBe(true);
    expect(filtersSeen(seen)).toEqual([TEAM]);
    upstream.requests.length = 0;
    expect((await get('/model/allocation', teamKey)).status).toBe(200);
    expect(filtersSeen(forwardedQuery())).toEqual([TEAM]);
  });

  it('HEAD is scoped like GET', async () => {
    expect((await get('/model/allocation?window=1d', teamKey, 'HEAD')).status).toBe(200);
    expect(filtersSeen(forwardedQuery())).toEqual([TEAM]);
  });

  it('"+" in other parameters is untouched (a Kubecost AND, or a space: the client\'s call)', async () => {
    const res = await get(
      '/model/allocation?names=a+b&shareNamespaces=kube-system+x&window=1d',
      teamKey,
    );
    expect(res.status).toBe(200);
    const seen = forwardedQuery();
    expect(seen.split('&').slice(0, 3)).toEqual([
      'names=a+b',
      'shareNamespaces=kube-system+x',
      'window=1d',
    ]);
    expect(filtersSeen(seen)).toEqual([TEAM]);
  });

  it.each([
    ['two filter parameters', '?filter=cluster:"a"&filter=cluster:"b"'],
    ['an empty and a full filter', '?filter=&window=1d&filter=cluster:"b"'],
    [
      '"filter" and an encoded "%66ilter" (Go decodes names)',
      '?filter=cluster:"a"&%66ilter=cluster:"b"',
    ],
    ['a legacy filterNamespaces', '?window=1d&filterNamespaces=kube-system'],
    ['a legacy filterClusters with an encoded name', '?%66ilterClusters=c1'],
    ['an unbalanced parenthesis', '?filter=(cluster:"a"'],
    ['an injected ")|("', '?filter=cluster:"a")|(namespace:"kube-system"'],
    ['a stray quote', '?filter=cluster:"a'],
  ])('%s → 400 invalid_filter, nothing forwarded', async (_name, query) => {
    const res = await get(`/model/allocation${query}`, teamKey);
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_filter');
    expect(upstream.requests).toHaveLength(0);
  });

  it('"%66ilter" alone is the filter parameter (Go decodes names): scoped, one filter upstream', async () => {
    const res = await get('/model/allocation?%66ilter=cluster%3A%22c1%22&window=1d', teamKey);
    if (res.status === 400) {
      expect(res.json.error).toBe('invalid_filter');
      expect(upstream.requests).toHaveLength(0);
      return;
    }
    expect(res.status).toBe(200);
    expect(filtersSeen(forwardedQuery())).toEqual([`(${TEAM})+(cluster:"c1")`]);
  });

  it('"Filter" and "FILTER" are refused for a filtered account (400): Go is case-sensitive, but a look-alike is never worth forwarding', async () => {
    for (const query of ['Filter=cluster:"x"&window=1d', 'window=1d&FILTER=y']) {
      const res = await get(`/model/allocation?${query}`, teamKey);
      expect(res.status, query).toBe(400);
      expect(res.json.error).toBe('invalid_filter');
    }
    expect(upstream.requests).toHaveLength(0);
  });

  // A raw '#' is not a query byte to every hop: one that reads it as a fragment (WHATWG URL
  // parsers, Envoy with http_reject_path_with_fragment off) would cut the account's filter
  // appended after it. Refused for filtered accounts, before anything reaches the upstream.
  it.each([
    '/model/allocation?window=1d#frag',
    '/model/allocation?window=1d#',
    '/model/allocation?window=1d#frag&filter=cluster%3A%22c1%22',
    '/model/allocation?filter=cluster%3A%22c1%22#x',
  ])('a raw "#" in the query: 400 invalid_filter, nothing forwarded (%s)', async (target) => {
    const res = await get(target, teamKey);
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_filter');
    expect(upstream.requests).toHaveLength(0);
  });

  it('an encoded "#" (%23) is an ordinary byte: kept, and the filter scoped', async () => {
    const res = await get('/model/allocation?names=a%23b&filter=cluster%3A%22c1%22', teamKey);
    expect(res.status).toBe(200);
    const seen = forwardedQuery();
    expect(seen.split('&')[0]).toBe('names=a%23b');
    expect(filtersSeen(seen)).toEqual([`(${TEAM})+(cluster:"c1")`]);
  });

  it('a very long query: every other byte kept, the filter still scoped', async () => {
    const long = `names=${'a,'.repeat(6000)}z`;
    const res = await get(`/model/allocation?${long}&filter=cluster%3A%22c1%22&window=1d`, teamKey);
    expect(res.status).toBe(200);
    const seen = forwardedQuery();
    expect(seen.split('&').filter((p) => !p.startsWith('filter='))).toEqual([long, 'window=1d']);
    expect(filtersSeen(seen)).toEqual([`(${TEAM})+(cluster:"c1")`]);
  });

  it('a very long filter: refused with 400 or forwarded scoped, never a 5xx', async () => {
    const client = Array.from({ length: 300 }, (_, i) => `namespace:"n${i}"`).join('|');
    const res = await get(`/model/allocation?filter=${encodeURIComponent(client)}`, teamKey);
    if (res.status === 400) {
      expect(res.json.error).toBe('invalid_filter');
      return;
    }
    expect(res.status).toBe(200);
    expect(filtersSeen(forwardedQuery())).toEqual([`(${TEAM})+(${client})`]);
  });
});

describe('a filtered account elsewhere', () => {
  it('a route without a filter kind → 403 filter_required, nothing forwarded', async () => {
    const res = await get('/model/reports/r1?window=1d', teamKey);
    expect(res.status).toBe(403);
    expect(res.json.error).toBe('filter_required');
    expect(res.json.message).toMatch(/route "reports" applies no filter/);
    expect(upstream.requests).toHaveLength(0);
  });

  it('a kind it has no filter for (allocation-filtered, calling assets) → 403, never unfiltered', async () => {
    const res = await get('/model/assets?window=1d', teamKey);
    expect(res.status).toBe(403);
    expect(res.json.error).toBe('filter_required');
    expect(res.json.message).toMatch(/no assets filter/);
    expect(upstream.requests).toHaveLength(0);
  });

  it('the admin API → 403 filter_required (an admin action could mint an unfiltered key)', async () => {
    // Through `send`, so the OpenAPI checker sees the answer.
    const res = await send(gw.url, '/_keygate/v1/accounts', {
      headers: { 'X-API-KEY': teamAdminKey },
    });
    expect(res.status).toBe(403);
    expect(res.json.error).toBe('filter_required');
  });

  it('refusals hold no in-flight slot (maxInflightPerAccount: 1)', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await get('/model/reports/r1', teamKey)).status).toBe(403);
      expect((await get('/model/allocation?filter=(', teamKey)).status).toBe(400);
    }
    expect((await get('/model/allocation', teamKey)).status).toBe(200);
  });

  it('the access log and the request counter show the refusal code like any other', async () => {
    await get('/model/reports/r2', teamKey);
    await get('/model/allocation?filterNamespaces=x', teamKey);
    const has = (want: Record<string, unknown>) =>
      gw.logs.access().some((l) => Object.entries(want).every(([k, v]) => l[k] === v));
    const refusedOnRoute = {
      route: 'reports',
      status: 403,
      error: 'filter_required',
      account: 'team-a',
    };
    const badFilter = {
      route: 'allocation',
      status: 400,
      error: 'invalid_filter',
      account: 'team-a',
    };
    await until(() => has(refusedOnRoute) && has(badFilter), 'the two refusals in the access log');
    const ops = await gw.app.listenOps(0, '127.0.0.1');
    const metrics = (await send(`http://127.0.0.1:${ops.port}`, '/metrics')).text;
    expect(metrics).toMatch(
      /keygate_requests_total\{route="reports",method="GET",code="403",account="team-a"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /keygate_requests_total\{route="allocation",method="GET",code="400",account="team-a"\} [1-9]/,
    );
  });
});

describe('an unfiltered account: the query exactly as sent', () => {
  it.each([
    '?window=1d&filterNamespaces=kube-system',
    '?filter=cluster:"a"&filter=cluster:"b"',
    '?%66ilter=x&Filter=y&names=a+b',
    '?filter=(((unbalanced',
    '?window=1d#frag&filter=x',
    '',
  ])('%s', async (query) => {
    const res = await get(`/model/allocation/summary${query}`, openKey);
    expect(res.status).toBe(200);
    expect(upstream.requests[0]?.url).toBe(`/allocation/summary${query}`);
  });

  it('routes without a kind and other kinds are served as before', async () => {
    expect((await get('/model/reports/r1?filter=x', openKey)).status).toBe(200);
    expect((await get('/model/assets?filter=x', openKey)).status).toBe(200);
    expect(upstream.requests.map((r) => r.url)).toEqual([
      '/reports/r1?filter=x',
      '/assets?filter=x',
    ]);
  });
});

describe('authz mode', () => {
  let authz: Gateway;
  let authzStore: MemoryKeyStore;
  beforeAll(async () => {
    authzStore = new MemoryKeyStore();
    authz = await startGateway({
      config: parseConfig(
        JSON.stringify({
          mode: 'authz',
          listen: { host: '127.0.0.1', port: 0 },
          store: { type: 'file' },
          routes: ROUTES,
          log: { level: 'info' },
        }),
        'authz-filter-test',
      ),
      store: authzStore,
    });
  });
  afterAll(async () => {
    await authz.close();
  });

  it('a filtered account is refused (403 filter_required): the data plane forwards the query as sent, unscoped', async () => {
    const now = Math.floor(Date.now() / 1000) - 60;
    const base = {
      role: 'reader',
      description: '',
      disabled: false,
      createdAt: now,
      updatedAt: now,
    };
    await authzStore.createAccount({ name: 'team-a', ...base, filters: { allocation: TEAM } });
    await authzStore.createAccount({ name: 'everyone', ...base });
    const team = (await authz.issue('team-a', 'reader')).key;
    const open = (await authz.issue('everyone', 'reader')).key;
    const ask = async (key: string) => {
      const { request } = await import('undici');
      const res = await request(`${authz.url}/_keygate/authz`, {
        headers: {
          'X-API-KEY': key,
          'X-Original-URI': '/model/allocation?window=1d',
          'X-Original-Method': 'GET',
        },
      });
      const text = await res.body.text();
      return {
        status: res.statusCode,
        body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
      };
    };
    const refused = await ask(team);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('filter_required');
    expect(String(refused.body.message)).toMatch(/authz mode/);
    expect((await ask(open)).status).toBe(200);
  });
});
