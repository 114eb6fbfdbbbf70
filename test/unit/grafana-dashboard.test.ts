import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  allPanels,
  concreteExpr,
  DASHBOARD_PATH,
  DATASOURCE_REF,
  DATASOURCE_VAR,
  dataPanels,
  readDashboard,
} from '../helpers/dashboard.js';

// The promtool check of every query and the check that every metric it names exists live in
// test/interop/grafana-dashboard.test.ts; the chart's ConfigMap in test/chart/grafana-dashboard.test.ts.
describe('helm/keygate/dashboards/keygate.json', () => {
  const dashboard = readDashboard();

  it('is valid JSON with a fixed uid, a current schemaVersion and no numeric id', () => {
    expect(() => JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8'))).not.toThrow();
    expect(dashboard.uid).toBe('keygate-overview');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    // A numeric id ties the file to one Grafana's database: import would overwrite another board.
    expect((dashboard as { id?: unknown }).id ?? null).toBeNull();
  });

  it('every panel has a unique id', () => {
    const ids = allPanels(dashboard).map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('has a prometheus datasource variable and multi-value namespace and job variables', () => {
    const vars = dashboard.templating?.list ?? [];
    const ds = vars.find((v) => v.name === 'datasource');
    expect(ds).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const name of ['namespace', 'job']) {
      // allValue ".*" also matches targets without the label (a Prometheus outside Kubernetes).
      expect(vars.find((v) => v.name === name)).toMatchObject({
        type: 'query',
        includeAll: true,
        multi: true,
        allValue: '.*',
        datasource: DATASOURCE_REF,
      });
    }
  });

  it('every data panel and target uses the datasource variable, never a hard-coded uid, and has a query', () => {
    const panels = dataPanels(dashboard);
    expect(panels.length).toBeGreaterThanOrEqual(20);
    for (const panel of panels) {
      expect(panel.datasource, panel.title).toEqual(DATASOURCE_REF);
      expect(panel.targets?.length ?? 0, panel.title).toBeGreaterThan(0);
      const refIds = (panel.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, panel.title).toBe(refIds.length);
      for (const target of panel.targets ?? []) {
        expect(target.datasource, panel.title).toEqual(DATASOURCE_REF);
        expect(target.expr?.trim(), panel.title).toBeTruthy();
      }
    }
    // No uid anywhere but the variable and Grafana's own built-in annotation source.
    const uids = [...readFileSync(DASHBOARD_PATH, 'utf8').matchAll(/"uid":\s*"([^"]*)"/g)].map(
      (m) => m[1],
    );
    expect(new Set(uids)).toEqual(new Set(['keygate-overview', DATASOURCE_VAR, '-- Grafana --']));
  });

  it('every metric selector is filtered by $job and $namespace', () => {
    for (const panel of dataPanels(dashboard)) {
      for (const target of panel.targets ?? []) {
        const selectors = [...(target.expr ?? '').matchAll(/([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)];
        expect(selectors.length, `${panel.title}: ${target.expr}`).toBeGreaterThan(0);
        for (const [, name, matchers] of selectors) {
          expect(matchers, `${panel.title}: ${name}`).toContain('job=~"$job"');
          expect(matchers, `${panel.title}: ${name}`).toContain('namespace=~"$namespace"');
        }
      }
    }
  });

  it('has the panels issue 13 asks for', () => {
    const exprs = dataPanels(dashboard)
      .flatMap((p) => p.targets ?? [])
      .map((t) => t.expr ?? '')
      .join('\n');
    for (const needed of [
      'sum by (route) (rate(keygate_requests_total',
      'sum by (account) (rate(keygate_requests_total',
      'sum by (result) (rate(keygate_auth_decisions_total',
      'histogram_quantile(0.5, sum by (le, route) (rate(keygate_request_duration_seconds_bucket',
      'histogram_quantile(0.99, sum by (le, route) (rate(keygate_request_duration_seconds_bucket',
      'keygate_upstream_errors_total',
      'keygate_key_cache_events_total',
      'keygate_key_verify_queue_depth',
      'result="verify_overloaded"',
      'keygate_store_up',
      'keygate_store_errors_total',
      'keygate_keys_expiring',
      'sum(up{',
    ]) {
      expect(exprs).toContain(needed);
    }
  });

  it('concreteExpr replaces every variable the queries use', () => {
    for (const target of dataPanels(dashboard).flatMap((p) => p.targets ?? [])) {
      expect(concreteExpr(target.expr ?? '')).not.toContain('$');
    }
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's ${var} syntax.
    expect(concreteExpr('rate(x{job=~"${job}"}[$__rate_interval])')).toBe(
      'rate(x{job=~"keygate"}[5m])',
    );
  });
});
