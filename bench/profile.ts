/**
 * npm run bench:profile [-- --seconds 10]: runs scenario (a) against keygate started with
 * `node --cpu-prof`, then prints the functions with the most self time.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mintKey } from '../test/helpers/gateway.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import { startKeygate } from './lib/keygate.js';
import { hasCommand, load, startServer } from './lib/measure.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    path: { type: 'string', default: '/model/allocation?window=1d' },
  },
});
const work = mkdtempSync(join(tmpdir(), 'keygate-profile-'));
const redis = await RedisServer.start();
const upstream = await startServer(process.execPath, ['bench/servers/fixed-upstream.mjs']);
const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
const started = await startKeygate({
  work,
  upstreamUrl,
  redisUrl: redis.url,
  routes: [
    { name: 'allocation', methods: ['GET'], path: '/model/allocation/**', scopes: ['read'] },
  ],
  nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${work}`],
});
const keygate = started.server;
const { key } = await mintKey(started.config, 'profile', 'reader');
const url = `http://127.0.0.1:${keygate.port}${values.path}`;
const tool = hasCommand('wrk') ? 'wrk' : 'autocannon';
await load(url, { connections: 32, seconds: 2, tool, headers: { 'X-API-KEY': key } });
const result = await load(url, {
  connections: 32,
  seconds: Number(values.seconds),
  tool,
  headers: { 'X-API-KEY': key },
});
await new Promise<void>((resolve) => {
  keygate.child.once('exit', () => resolve());
  keygate.child.kill('SIGTERM'); // a clean exit writes the profile
});
await upstream.stop();
await redis.destroy();

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
const file = readdirSync(work).find((f) => f.endsWith('.cpuprofile')) as string;
const profile = JSON.parse(readFileSync(join(work, file), 'utf8')) as { nodes: Node[] };
const total = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
const byFrame = new Map<string, number>();
for (const n of profile.nodes) {
  const where = n.callFrame.url.replace(/^.*\/(node_modules\/|src\/|dist\/)/, '$1') || '(native)';
  const key = `${n.callFrame.functionName || '(anonymous)'}  ${where}:${n.callFrame.lineNumber + 1}`;
  byFrame.set(key, (byFrame.get(key) ?? 0) + (n.hitCount ?? 0));
}
const byModule = new Map<string, number>();
for (const n of profile.nodes) {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)|\/dist\/([^/]+)|^node:([^/]+)/.exec(
    n.callFrame.url,
  );
  const name = m
    ? (m[1] ?? (m[2] ? `keygate:${m[2]}` : `node:${m[3]}`))
    : n.callFrame.url
      ? 'other'
      : `(${n.callFrame.functionName || 'native'})`;
  byModule.set(name, (byModule.get(name) ?? 0) + (n.hitCount ?? 0));
}
console.log(
  `${result.requests} requests, ${result.rps.toFixed(0)} req/s; ${total} samples; profile ${join(work, file)}\n`,
);
console.log('top self time by function:');
for (const [k, v] of [...byFrame].sort((a, b) => b[1] - a[1]).slice(0, 25))
  console.log(`${((v / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
console.log('\nself time by module:');
for (const [k, v] of [...byModule].sort((a, b) => b[1] - a[1]).slice(0, 15))
  console.log(`${((v / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
