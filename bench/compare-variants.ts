/**
 * npm run bench:compare -- --variant base=dist-base/cli.js@info --variant new=dist/cli.js@info
 *   [--bare] [--scenarios a,c,d,e] [--rounds 6] [--seconds 3] [--extra 'name={"json":"config"}']
 *
 * A/B of keygate builds (or log levels) in ONE run: every variant is started side by side on
 * the same Redis and upstream, and short rounds alternate between them, so whatever else uses
 * the CPU meanwhile is spread over all variants alike. Comparing medians across separate runs
 * on a shared machine measures the neighbours, not the change.
 *
 * A variant is `name=<path to cli.js>@<log level>[:--node-flag,...]`; a copy of an older build (e.g.
 * `cp -r dist dist-base` before a change) keeps working from the repository root because
 * dist-* sits at the same depth as dist. `--bare` adds the bare forwarder. `--extra name=JSON`
 * (repeatable) adds config to one variant: the same build with and without a setting, e.g.
 * `--variant plain=dist/cli.js --variant rl=dist/cli.js --extra 'rl={"rateLimits":{…}}'`.
 * Prints idle RSS after start-up (before any request), CPU µs/req per scenario (user+system
 * from /proc, whole process incl. worker threads), and each variant's ratio to the first.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateKey } from '../src/keys/key-format.js';
import { mintKey } from '../test/helpers/gateway.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import { startKeygate } from './lib/keygate.js';
import {
  cpuSeconds,
  hasCommand,
  load,
  median,
  rssBytes,
  type Server,
  startServer,
} from './lib/measure.js';

const { values } = parseArgs({
  options: {
    variant: { type: 'string', multiple: true, default: [] },
    extra: { type: 'string', multiple: true, default: [] },
    bare: { type: 'boolean', default: false },
    scenarios: { type: 'string', default: 'a' },
    rounds: { type: 'string', default: '6' },
    seconds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    settle: { type: 'string', default: '3' },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const tool = hasCommand('wrk') ? 'wrk' : 'autocannon';
const log = (m: string) => process.stderr.write(`${m}\n`);

const specs = (values.variant as string[]).map((v) => {
  const match = /^([^=]+)=([^@]+)(?:@(\w+))?(?::(.+))?$/.exec(v);
  if (!match) throw new Error(`--variant name=path/cli.js@level[:--node-flag,...], got ${v}`);
  return {
    name: match[1] as string,
    cli: match[2] as string,
    level: match[3] ?? 'info',
    nodeArgs: match[4]?.split(',') ?? [],
  };
});
if (specs.length === 0 && !values.bare) throw new Error('give at least one --variant');
const extras = new Map<string, Record<string, unknown>>();
for (const e of values.extra as string[]) {
  const at = e.indexOf('=');
  if (at < 1) throw new Error(`--extra name=JSON, got ${e}`);
  extras.set(e.slice(0, at), JSON.parse(e.slice(at + 1)) as Record<string, unknown>);
}

const work = mkdtempSync(join(tmpdir(), 'keygate-compare-'));
const redis = await RedisServer.start();
process.on('exit', () => void redis.stop());
const upstream = await startServer(process.execPath, ['bench/servers/fixed-upstream.mjs']);
const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
const routes = [
  { name: 'allocation', methods: ['GET'], path: '/model/allocation/**', scopes: ['read'] },
];

const systems: Array<{ name: string; server: Server; idleRss?: number }> = [];
let config: Parameters<typeof mintKey>[0] | undefined;
for (const spec of specs) {
  const started = await startKeygate({
    work,
    upstreamUrl,
    redisUrl: redis.url,
    routes,
    cli: spec.cli,
    logLevel: spec.level,
    name: spec.name,
    nodeArgs: spec.nodeArgs,
    ...(extras.has(spec.name) ? { extra: extras.get(spec.name) ?? {} } : {}),
  });
  config = started.config;
  systems.push({ name: spec.name, server: started.server });
}
if (values.bare) {
  const bare = await startServer(process.execPath, [
    '--import',
    'tsx',
    'bench/servers/bare-forwarder.ts',
    upstreamUrl,
    '0',
  ]);
  systems.push({ name: 'bare', server: bare });
}
// Idle RSS: after start-up has settled, before the first request.
await new Promise((r) => setTimeout(r, Number(values.settle) * 1000));
for (const s of systems) s.idleRss = rssBytes(s.server.child.pid as number);

const valid = config ? await mintKey(config, 'bench', 'reader') : undefined;
const keysFile = (name: string, keys: string[]) => {
  const path = join(work, `${name}.keys`);
  writeFileSync(path, `${keys.join('\n')}\n`);
  return path;
};
const validHeaders = valid ? { 'X-API-KEY': valid.key } : undefined;
const scenarios: Record<
  string,
  { path: string; headers?: Record<string, string>; keysFile?: string; bare: boolean }
> = {
  a: {
    path: '/model/allocation?window=1d',
    ...(validHeaders ? { headers: validHeaders } : {}),
    bare: true,
  },
  c: {
    path: '/model/allocation',
    keysFile: keysFile('malformed', [
      'kg_not_a_key',
      valid ? `${valid.key.slice(0, -1)}${valid.key.endsWith('A') ? 'B' : 'A'}` : 'x',
      'garbage',
      `${valid?.key ?? ''}x`,
    ]),
    bare: false,
  },
  d: {
    path: '/model/allocation',
    keysFile: keysFile(
      'unknown',
      Array.from({ length: 2000 }, () => generateKey('kg').full),
    ),
    bare: false,
  },
  e: {
    path: '/model/getProductKey',
    ...(validHeaders ? { headers: validHeaders } : {}),
    bare: false,
  },
};
const wanted = values.scenarios.split(',').filter((id) => id in scenarios);

async function sample(server: Server, id: string, secs: number): Promise<number> {
  const s = scenarios[id] as (typeof scenarios)[string];
  const pid = server.child.pid as number;
  const before = cpuSeconds(pid);
  const result = await load(`http://127.0.0.1:${server.port}${s.path}`, {
    connections,
    seconds: secs,
    tool,
    ...(s.headers ? { headers: s.headers } : {}),
    ...(s.keysFile ? { keysFile: s.keysFile } : {}),
  });
  return ((cpuSeconds(pid) - before) / Math.max(result.requests, 1)) * 1e6;
}

// Warm-up: JIT, pools, the verified-key cache, the negative cache.
for (const s of systems) for (const id of wanted) await sample(s.server, id, 1);

const cpu = new Map<string, number[]>();
for (const id of wanted) {
  for (let round = 0; round < rounds; round++) {
    // Alternate the order too, so neither variant always runs right after the other.
    const order = round % 2 === 0 ? systems : [...systems].reverse();
    for (const s of order) {
      if (s.name === 'bare' && !scenarios[id]?.bare) continue;
      const us = await sample(s.server, id, seconds);
      const key = `${id}:${s.name}`;
      cpu.set(key, [...(cpu.get(key) ?? []), us]);
      log(`  (${id}) round ${round + 1} ${s.name}: ${us.toFixed(1)} µs/req`);
    }
  }
}

const rows = [
  '| variant | idle RSS MB | ' +
    wanted.map((id) => `(${id}) µs/req`).join(' | ') +
    ' | after-run RSS MB |',
];
rows.push(`|---|---:|${wanted.map(() => '---:|').join('')}---:|`);
const first = systems[0]?.name as string;
for (const s of systems) {
  const cells = wanted.map((id) => {
    const m = cpu.get(`${id}:${s.name}`);
    if (!m) return '–';
    const base = cpu.get(`${id}:${first}`);
    const ratio = base && s.name !== first ? ` (${(median(m) / median(base)).toFixed(2)}×)` : '';
    return `${median(m).toFixed(1)}${ratio}`;
  });
  rows.push(
    `| ${s.name} | ${((s.idleRss ?? 0) / 1048576).toFixed(1)} | ${cells.join(' | ')} | ${(rssBytes(s.server.child.pid as number) / 1048576).toFixed(1)} |`,
  );
}
console.log(rows.join('\n'));
for (const s of systems) await s.server.stop();
await upstream.stop();
await redis.destroy();
