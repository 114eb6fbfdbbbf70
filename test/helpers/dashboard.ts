import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

/** The one copy of keygate's Grafana dashboard: the chart renders it, operators import it. */
export const DASHBOARD_PATH = join(ROOT, 'helm/keygate/dashboards/keygate.json');

export type DatasourceRef = { type?: string; uid?: string };
export type Target = { refId?: string; expr?: string; datasource?: DatasourceRef };
export type Panel = {
  id?: number;
  type?: string;
  title?: string;
  datasource?: DatasourceRef;
  targets?: Target[];
  panels?: Panel[];
};
export type Dashboard = {
  uid?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: Array<{ name?: string; type?: string; query?: unknown }> };
};

export const readDashboard = (): Dashboard =>
  JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Dashboard;

/** Every panel, rows' nested (collapsed) panels included. */
export function allPanels(d: Dashboard): Panel[] {
  return (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Panels that show data (rows only group them). */
export const dataPanels = (d: Dashboard): Panel[] => allPanels(d).filter((p) => p.type !== 'row');

/**
 * A panel query with Grafana's variables replaced by values Prometheus accepts, so promtool can
 * parse it: the built-in intervals by durations, $job/$namespace by plain names.
 */
export function concreteExpr(expr: string): string {
  const values: ReadonlyArray<readonly [RegExp, string]> = [
    [/\$__rate_interval\b|\$\{__rate_interval\}/g, '5m'],
    [/\$__interval\b|\$\{__interval\}/g, '1m'],
    [/\$__range\b|\$\{__range\}/g, '1h'],
    [/\$job\b|\$\{job(:[a-z]+)?\}/g, 'keygate'],
    [/\$namespace\b|\$\{namespace(:[a-z]+)?\}/g, 'monitoring'],
  ];
  let out = expr;
  for (const [pattern, value] of values) out = out.replace(pattern, value);
  return out;
}

/** Grafana's reference to the `datasource` variable: every panel and target points at it. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template.
export const DATASOURCE_VAR = '${datasource}';
export const DATASOURCE_REF = { type: 'prometheus', uid: DATASOURCE_VAR } as const;
