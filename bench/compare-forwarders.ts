/**
 * Which forwarding library should keygate ride? Runs each candidate as its own process in
 * front of the same fixed upstream, loads it, and reads the proxy's CPU from the kernel.
 *   npm run bench:forwarders [-- --seconds 10 --rounds 3]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, hasCommand, load, median, ROOT, startServer } from './lib/measure.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
  },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const tool = hasCommand('wrk') ? 'wrk' : 'autocannon';

const upstream = await startServer(process.execPath, ['bench/servers/fixed-upstream.mjs']);
const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
const candidates = [
  {
    name: 'http-proxy 1.18.1, defaults (no agent)',
    script: 'bench/servers/http-proxy-forwarder.ts',
    mode: 'default',
  },
  {
    name: 'http-proxy 1.18.1, keep-alive agent',
    script: 'bench/servers/http-proxy-forwarder.ts',
    mode: 'keep-alive',
  },
  { name: 'undici Pool (keygate forward/)', script: 'bench/servers/bare-forwarder.ts', mode: '' },
];
const servers = await Promise.all(
  candidates.map((c) =>
    startServer(process.execPath, ['--import', 'tsx', c.script, upstreamUrl, '0', c.mode]),
  ),
);

console.error(
  `load: ${tool}, ${connections} connections, ${seconds} s per run, ${rounds} alternating rounds`,
);
const samples = candidates.map(() => ({
  cpuUs: [] as number[],
  rps: [] as number[],
  p99: [] as number[],
}));
// Warm-up: JIT and connection pools, not measured.
for (const server of servers)
  await load(`http://127.0.0.1:${server.port}/allocation`, { connections, seconds: 2, tool });
for (let round = 0; round < rounds; round++) {
  for (const [i, server] of servers.entries()) {
    const pid = server.child.pid as number;
    const cpuBefore = cpuSeconds(pid);
    const result = await load(`http://127.0.0.1:${server.port}/allocation?window=1d`, {
      connections,
      seconds,
      tool,
    });
    const cpu = cpuSeconds(pid) - cpuBefore;
    if (result.non2xx > 0)
      throw new Error(`${candidates[i]?.name}: ${result.non2xx} non-2xx responses`);
    const sample = samples[i] as (typeof samples)[number];
    sample.cpuUs.push((cpu / result.requests) * 1e6);
    sample.rps.push(result.rps);
    sample.p99.push(result.p99ms);
    console.error(
      `  round ${round + 1} ${candidates[i]?.name}: ${((cpu / result.requests) * 1e6).toFixed(1)} µs CPU/req, ${result.rps.toFixed(0)} req/s`,
    );
  }
}
await Promise.all([...servers, upstream].map((s) => s.stop()));

const rows = candidates.map((c, i) => {
  const s = samples[i] as (typeof samples)[number];
  return {
    forwarder: c.name,
    cpuUsPerRequest: median(s.cpuUs),
    rps: median(s.rps),
    p99ms: median(s.p99),
  };
});
console.log(
  `\n| forwarder | proxy CPU µs/request (median) | req/s | p99 ms |\n|---|---:|---:|---:|`,
);
for (const r of rows)
  console.log(
    `| ${r.forwarder} | ${r.cpuUsPerRequest.toFixed(1)} | ${r.rps.toFixed(0)} | ${r.p99ms.toFixed(2)} |`,
  );
writeFileSync(
  join(ROOT, 'bench/results/forwarders.json'),
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, tool, connections, seconds, rounds, rows }, null, 2)}\n`,
);
