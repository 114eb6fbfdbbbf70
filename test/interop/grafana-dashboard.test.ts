import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { concreteExpr, dataPanels, readDashboard } from '../helpers/dashboard.js';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { promtool } from '../helpers/promtool.js';
import { RecordingUpstream } from '../helpers/upstream.js';

const targets = () =>
  dataPanels(readDashboard()).flatMap((panel) =>
    (panel.targets ?? []).map((t) => ({ panel, refId: t.refId ?? '', expr: t.expr ?? '' })),
  );

it('`promtool check rules` parses every dashboard query (wrapped as recording rules)', () => {
  const all = targets();
  expect(all.length).toBeGreaterThanOrEqual(25);
  const rules = all.map(({ panel, refId, expr }) => ({
    record: `dashboard:panel_${panel.id}_${refId}`,
    expr: concreteExpr(expr),
  }));
  const dir = mkdtempSync(join(tmpdir(), 'kg-dash-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'dashboard-rules.yaml');
  writeFileSync(file, stringify({ groups: [{ name: 'keygate-dashboard', rules }] }));
  const r = spawnSync(promtool(), ['check', 'rules', file], { encoding: 'utf8' });
  expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  expect(r.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
});

it('promtool refuses a broken query wrapped the same way (the check above can fail)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-dash-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'broken.yaml');
  const expr = concreteExpr(
    'sum by (route) (rate(keygate_requests_total{job=~"$job"}[$__rate_interval])',
  );
  writeFileSync(
    file,
    stringify({ groups: [{ name: 'g', rules: [{ record: 'dashboard:x', expr }] }] }),
  );
  const r = spawnSync(promtool(), ['check', 'rules', file], { encoding: 'utf8' });
  expect(r.status).not.toBe(0);
});

describe('the metrics the dashboard queries', () => {
  let upstream: RecordingUpstream;
  let gw: Gateway;
  let exported: Set<string>;

  beforeAll(async () => {
    upstream = await RecordingUpstream.start();
    gw = await startGateway({ config: testConfig(upstream.url) });
    const ops = await gw.app.listenOps(0, '127.0.0.1');
    // The names come from what keygate exports (# TYPE lines of a real scrape), never from the
    // dashboard: renaming a metric in src/ fails this test until the dashboard follows.
    const text = (await send(`http://127.0.0.1:${ops.port}`, '/metrics')).text;
    exported = new Set<string>(['up']); // `up` is Prometheus' own, per scrape target
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      if (name === undefined) continue;
      exported.add(name);
      if (type === 'histogram')
        for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${name}${suffix}`);
    }
  });

  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('every metric a dashboard query names is one keygate exports', () => {
    expect(exported.has('keygate_requests_total')).toBe(true);
    expect(exported.has('keygate_keys_expiring')).toBe(true);
    const used = new Set<string>();
    for (const { panel, expr } of targets()) {
      // Metric names are the identifiers before a `{` (every selector has one, see the unit test).
      const names = [...expr.matchAll(/([a-zA-Z_:][\w:]*)\s*\{/g)].map((m) => m[1] as string);
      expect(names.length, `${panel.title}: ${expr}`).toBeGreaterThan(0);
      // And any keygate_ token, in case one is written without braces.
      for (const m of expr.matchAll(/\bkeygate_\w+/g)) names.push(m[0]);
      for (const name of names) {
        used.add(name);
        expect(exported.has(name), `${panel.title}: ${name} is not in keygate's /metrics`).toBe(
          true,
        );
      }
    }
    // The panels cover the metrics the issue names.
    for (const name of [
      'keygate_requests_total',
      'keygate_auth_decisions_total',
      'keygate_request_duration_seconds_bucket',
      'keygate_upstream_errors_total',
      'keygate_key_cache_events_total',
      'keygate_key_verify_queue_depth',
      'keygate_store_up',
      'keygate_store_errors_total',
      'keygate_keys_expiring',
      'up',
    ]) {
      expect(used.has(name), name).toBe(true);
    }
  });
});
