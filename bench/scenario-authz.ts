/**
 * Scenario (h): what authz mode costs. The same wrk load on the same route with the same key
 * through four set-ups in front of the same fixed upstream, CPU per request of every process
 * involved, from /proc:
 *   h1 plain nginx with its `map` key check (the baseline);
 *   h2 nginx + keygate authz (shipped keygate-authz.conf, no cache);
 *   h3 nginx + keygate authz with the caching snippet (authz.cacheTtl 30s);
 *   h3n the same with the njs cache key (the snippet's documented alternative);
 *   h3r the same with the raw credential as nginx's cache key (NOT shipped: nginx writes the cache
 *       key into each cache file, so this puts API keys in files; measured so the price of the
 *       hash is known);
 *   h4 keygate in proxy mode alone.
 * Run by bench/run.ts; alone (a smoke run of this scenario only, its own Redis and upstream):
 *   npm run build && npx tsx bench/scenario-authz.ts [--seconds 2] [--rounds 1]
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mintKey } from '../test/helpers/gateway.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import { startKeygate } from './lib/keygate.js';
import { cpuSeconds, hasCommand, load, median, type Server, startServer } from './lib/measure.js';
import { startNginx } from './lib/nginx.js';
import { startNginxAuthz } from './lib/nginx-authz.js';

export type AuthzSystem = 'h1' | 'h2' | 'h3' | 'h3n' | 'h3r' | 'h4';
export const AUTHZ_SYSTEMS: Record<AuthzSystem, string> = {
  h1: 'nginx alone, `map` key check',
  h2: 'nginx + keygate authz, no cache',
  h3: 'nginx + keygate authz, caching snippet as shipped (set-misc key, cacheTtl 30s)',
  h3n: 'the same, njs cache key (the documented alternative)',
  h3r: 'the same, raw credential as cache key (not shipped: keys in cache files)',
  h4: 'keygate proxy mode alone',
};

export interface AuthzSample {
  /** CPU µs per request: nginx (master, workers, cache processes), keygate, both. */
  nginxUs: number;
  keygateUs: number;
  pairUs: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  requests: number;
}

export interface AuthzResults {
  samples: Partial<Record<AuthzSystem, AuthzSample[]>>;
  median: Partial<Record<AuthzSystem, AuthzSample>>;
  /** h3 pair ÷ h1 (budget ≤ 1.8) and h2 pair ÷ h4. */
  ratios: {
    h3OverH1: number;
    h3nOverH1: number;
    h3rOverH1: number;
    h2OverH4: number;
    h2OverH1: number;
  };
  rows: string[];
  budget: { line: string; value: string; ok: boolean | undefined };
}

const ROUTES = [
  { name: 'allocation', methods: ['GET'], path: '/model/allocation/**', scopes: ['read'] },
];
const PATH = '/model/allocation?window=1d';
/** Where the caching snippet's load_module line (Debian's libnginx-mod-http-js) finds njs. */
const NGINX_MODULES = [
  '/usr/lib/nginx/modules/ngx_http_js_module.so',
  '/usr/lib/nginx/modules/ngx_http_set_misc_module.so',
];

/** CPU seconds per live process; a process gone meanwhile (nginx's cache loader) is skipped. */
function cpuByPid(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    try {
      out.set(pid, cpuSeconds(pid));
    } catch {
      // exited between listing and reading
    }
  }
  return out;
}
function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, seconds] of after) sum += seconds - (before.get(pid) ?? 0);
  return sum;
}

export async function runAuthzScenario(options: {
  work: string;
  redisUrl: string;
  upstreamPort: number;
  seconds: number;
  rounds: number;
  connections: number;
  tool: 'wrk' | 'autocannon';
  log: (message: string) => void;
}): Promise<AuthzResults> {
  const { work, log } = options;
  const upstreamUrl = `http://127.0.0.1:${options.upstreamPort}`;
  const common = { work, upstreamUrl, redisUrl: options.redisUrl, routes: ROUTES };
  const plain = await startKeygate({ ...common, name: 'h-authz', extra: { mode: 'authz' } });
  const cached = await startKeygate({
    ...common,
    name: 'h-authz-cache',
    extra: { mode: 'authz', authz: { cacheTtl: '30s' } },
  });
  const proxy = await startKeygate({ ...common, name: 'h-proxy' });
  const { key } = await mintKey(proxy.config, 'bench-h', 'reader');
  const h1 = await startNginx(mkdtempSync(join(work, 'h1-')), options.upstreamPort, key);
  // nginx in front of the fixed upstream, asking keygate at `port` with the shipped snippet;
  // `cache`: which cache key (or none: the plain snippet).
  const nginxAuthz = (name: string, port: number, cache: 'none' | 'set-misc' | 'njs' | 'raw') =>
    startNginxAuthz(
      mkdtempSync(join(work, `${name}-`)),
      options.upstreamPort,
      port,
      cache !== 'none',
      cache === 'none' ? undefined : cache,
    );
  const h2 = await nginxAuthz('h2', plain.server.port, 'none');
  const h3 = await nginxAuthz('h3', cached.server.port, 'set-misc');
  const h3n = await nginxAuthz('h3n', cached.server.port, 'njs');
  const h3r = await nginxAuthz('h3r', cached.server.port, 'raw');
  const setups: Array<[AuthzSystem, Server, Server | undefined]> = [
    ['h1', h1, undefined],
    ['h2', h2, plain.server],
    ['h3', h3, cached.server],
    ['h3n', h3n, cached.server],
    ['h3r', h3r, cached.server],
    ['h4', proxy.server, undefined],
  ];
  const headers = { 'X-API-KEY': key };

  const samples: Partial<Record<AuthzSystem, AuthzSample[]>> = {};
  const run = async (
    system: AuthzSystem,
    front: Server,
    keygate: Server | undefined,
    seconds: number,
  ) => {
    // h4's front IS keygate: its CPU is counted once, as keygate's.
    const nginxPids = system === 'h4' ? [] : front.pids();
    const keygatePids = system === 'h4' ? front.pids() : (keygate?.pids() ?? []);
    const nginxBefore = cpuByPid(nginxPids);
    const keygateBefore = cpuByPid(keygatePids);
    const result = await load(`http://127.0.0.1:${front.port}${PATH}`, {
      connections: options.connections,
      seconds,
      tool: options.tool,
      headers,
    });
    const n = Math.max(result.requests, 1);
    const nginxUs =
      (cpuDelta(nginxBefore, cpuByPid(system === 'h4' ? [] : front.pids())) / n) * 1e6;
    const keygateUs = (cpuDelta(keygateBefore, cpuByPid(keygatePids)) / n) * 1e6;
    return {
      nginxUs,
      keygateUs,
      pairUs: nginxUs + keygateUs,
      rps: result.rps,
      p50: result.p50ms,
      p99: result.p99ms,
      non2xx: result.non2xx,
      requests: result.requests,
    };
  };

  // Warm-up: JIT, pools, keygate's verified-key cache, nginx's answer cache.
  for (const [system, front, keygate] of setups)
    await run(system, front, keygate, Math.min(2, options.seconds));
  for (let round = 0; round < options.rounds; round++) {
    for (const [system, front, keygate] of setups) {
      const sample = await run(system, front, keygate, options.seconds);
      samples[system] = [...(samples[system] ?? []), sample];
      log(
        `  (${system}) round ${round + 1}: pair ${sample.pairUs.toFixed(1)} µs/req (nginx ${sample.nginxUs.toFixed(1)}, keygate ${sample.keygateUs.toFixed(1)}), ${sample.rps.toFixed(0)} req/s, p99 ${sample.p99.toFixed(2)} ms, non-2xx ${sample.non2xx}`,
      );
      if (sample.non2xx > 0) log(`  (${system}) WARNING: ${sample.non2xx} non-2xx answers`);
    }
  }
  // Each process once: h3, h3n and h3r share one keygate, and a second stop would wait forever
  // for an exit that already happened.
  const stopped = new Set<Server>();
  for (const [, front, keygate] of setups) {
    for (const server of [front, keygate]) {
      if (server === undefined || stopped.has(server)) continue;
      stopped.add(server);
      await server.stop();
    }
  }

  const med: Partial<Record<AuthzSystem, AuthzSample>> = {};
  for (const system of Object.keys(AUTHZ_SYSTEMS) as AuthzSystem[]) {
    const list = samples[system] ?? [];
    if (list.length === 0) continue;
    const m = (field: keyof AuthzSample) => median(list.map((s) => s[field]));
    med[system] = {
      nginxUs: m('nginxUs'),
      keygateUs: m('keygateUs'),
      pairUs: m('pairUs'),
      rps: m('rps'),
      p50: m('p50'),
      p99: m('p99'),
      non2xx: m('non2xx'),
      requests: m('requests'),
    };
  }
  const pair = (s: AuthzSystem) => med[s]?.pairUs ?? Number.NaN;
  const ratios = {
    h3OverH1: pair('h3') / pair('h1'),
    h3nOverH1: pair('h3n') / pair('h1'),
    h3rOverH1: pair('h3r') / pair('h1'),
    h2OverH4: pair('h2') / pair('h4'),
    h2OverH1: pair('h2') / pair('h1'),
  };
  const fmt = (n: number | undefined, digits = 1) =>
    n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits);
  const rows = [
    '| (h) authz mode, valid key, allowed route | req/s | p50 ms | p99 ms | nginx CPU µs/req | keygate CPU µs/req | pair CPU µs/req | pair / h1 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...(Object.keys(AUTHZ_SYSTEMS) as AuthzSystem[]).map((s) => {
      const x = med[s];
      return `| (${s}) ${AUTHZ_SYSTEMS[s]} | ${fmt(x?.rps, 0)} | ${fmt(x?.p50, 2)} | ${fmt(x?.p99, 2)} | ${s === 'h4' ? '–' : fmt(x?.nginxUs)} | ${s === 'h1' ? '–' : fmt(x?.keygateUs)} | ${fmt(x?.pairUs)} | ${fmt(pair(s) / pair('h1'), 2)} |`;
    }),
  ];
  const budget = {
    line: '(h) nginx + keygate authz with the caching snippet: pair CPU/req ≤ 1.8 × plain nginx (`map`)',
    value: `${fmt(pair('h3'))} vs ${fmt(pair('h1'))} µs = ${fmt(ratios.h3OverH1, 2)}× (njs key: ${fmt(ratios.h3nOverH1, 2)}×; raw key, not shipped: ${fmt(ratios.h3rOverH1, 2)}×; without cache: ${fmt(ratios.h2OverH1, 2)}× nginx, ${fmt(ratios.h2OverH4, 2)}× keygate proxy mode)`,
    ok: Number.isNaN(ratios.h3OverH1) ? undefined : ratios.h3OverH1 <= 1.8,
  };
  return { samples, median: med, ratios, rows, budget };
}

/** nginx and its set-misc and njs modules, which (h3, h3n) need: the two cache-key builders. */
export function canRunAuthzScenario(): boolean {
  return hasCommand('nginx') && NGINX_MODULES.every((m) => existsSync(m));
}

// Alone: a smoke run of (h) only, with its own Redis and upstream; prints, writes nothing.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '1' },
      connections: { type: 'string', default: '32' },
    },
  });
  const redis = await RedisServer.start();
  const upstream = await startServer(process.execPath, ['bench/servers/fixed-upstream.mjs']);
  try {
    const results = await runAuthzScenario({
      work: mkdtempSync(join(tmpdir(), 'keygate-bench-h-')),
      redisUrl: redis.url,
      upstreamPort: upstream.port,
      seconds: Number(values.seconds),
      rounds: Number(values.rounds),
      connections: Number(values.connections),
      tool: process.env.BENCH_LOAD === 'autocannon' || !hasCommand('wrk') ? 'autocannon' : 'wrk',
      log: (m) => process.stderr.write(`${m}\n`),
    });
    console.log(
      [
        `scenario (h) alone, ${values.rounds} round(s) × ${values.seconds} s (smoke: figures not measured)`,
        '',
        ...results.rows,
        '',
        `${results.budget.line}: ${results.budget.value} → ${results.budget.ok ? 'met' : 'NOT met'}`,
      ].join('\n'),
    );
  } finally {
    await upstream.stop();
    await redis.destroy();
  }
}
