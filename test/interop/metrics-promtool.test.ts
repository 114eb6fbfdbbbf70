import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { parsePrometheusText, series } from '../helpers/prom-text.js';
import { promtool } from '../helpers/promtool.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let upstream: RecordingUpstream;
let gw: Gateway;
let opsUrl: string;
let firstScrape: string;

beforeAll(async () => {
  upstream = await RecordingUpstream.start();
  gw = await startGateway({ config: testConfig(upstream.url) });
  const ops = await gw.app.listenOps(0, '127.0.0.1');
  opsUrl = `http://127.0.0.1:${ops.port}`;
  // At once, before the event-loop lag histogram has a sample (its mean is then NaN).
  firstScrape = (await send(opsUrl, '/metrics')).text;
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
});

function check(text: string) {
  return spawnSync(promtool(), ['check', 'metrics'], { input: text, encoding: 'utf8' });
}

it('a real /metrics scrape passes `promtool check metrics` with no problems (no gauge named *_total)', async () => {
  const reader = await gw.issue('dash', 'reader');
  for (const path of ['/model/allocation', '/model/nowhere'])
    await send(gw.url, path, { headers: { 'x-api-key': reader.key } });
  await send(gw.url, '/model/allocation');
  await gw.logs.waitForAccess(3);
  const text = (await send(opsUrl, '/metrics')).text;
  expect(text).toContain('keygate_requests_total{');
  const result = check(text);
  expect(`${result.stdout}${result.stderr}`).toBe('');
  expect(result.status).toBe(0);
  // What promtool caught before: the per-type gauges stay; the summed `_total` gauges are gone.
  expect(text).toMatch(/^# TYPE keygate_nodejs_active_handles gauge$/m);
  expect(text).not.toMatch(/^keygate_nodejs_active_\w+_total/m);
});

it('a scrape right after start is valid too: promtool, and a strict reader (NaN spelled "NaN")', () => {
  const result = check(firstScrape);
  expect(`${result.stdout}${result.stderr}`).toBe('');
  expect(result.status).toBe(0);
  expect(() => parsePrometheusText(firstScrape)).not.toThrow();
});

it('keygate_build_info{version, node} is 1, with the version from package.json', async () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  const m = parsePrometheusText((await send(opsUrl, '/metrics')).text);
  expect(m.get(series('keygate_build_info', { version: pkg.version, node: process.version }))).toBe(
    1,
  );
  const infos = [...m.keys()].filter((k) => k.startsWith('keygate_build_info'));
  expect(infos).toHaveLength(1);
});
