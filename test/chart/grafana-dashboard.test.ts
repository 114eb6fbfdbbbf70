import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DASHBOARD_PATH } from '../helpers/dashboard.js';
import { renderChartKind } from '../helpers/helm.js';
import { validateK8sObject } from '../helpers/k8s-validate.js';

type ConfigMap = {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
  };
  data: Record<string, string>;
};

const REDIS = 'redis.existingSecret.name=keygate-redis';
const dashboards = (sets: string[]) =>
  renderChartKind<ConfigMap>('ConfigMap', [REDIS, ...sets]).filter((c) =>
    c.metadata.name.endsWith('-dashboard'),
  );

describe('grafanaDashboard', () => {
  it('is off by default', () => {
    expect(dashboards([])).toEqual([]);
  });

  it('renders a ConfigMap labelled grafana_dashboard: "1" holding exactly the repo file\'s JSON', async () => {
    const [cm, ...more] = dashboards(['grafanaDashboard.enabled=true']);
    expect(more).toEqual([]);
    expect(cm?.metadata.name).toBe('kg-keygate-dashboard');
    expect(cm?.metadata.labels.grafana_dashboard).toBe('1');
    expect(cm?.metadata.annotations).toBeUndefined();
    expect(cm?.metadata.namespace).toBeUndefined();
    expect(Object.keys(cm?.data ?? {})).toEqual(['keygate.json']);
    const file = readFileSync(DASHBOARD_PATH, 'utf8');
    // Byte for byte but the final newline (a `|-` block), and the same JSON document.
    expect(cm?.data['keygate.json']).toBe(file.replace(/\n$/, ''));
    expect(JSON.parse(cm?.data['keygate.json'] ?? '')).toEqual(JSON.parse(file));
    expect(await validateK8sObject(cm as never)).toEqual([]);
  });

  it('the label, its value, extra labels, the namespace and a folder annotation are configurable', async () => {
    const [cm] = dashboards([
      'grafanaDashboard.enabled=true',
      'grafanaDashboard.label=dashboards.example.com/grafana',
      'grafanaDashboard.labelValue=keygate',
      'grafanaDashboard.labels.team=platform',
      'grafanaDashboard.namespace=monitoring',
      'grafanaDashboard.folder=Platform',
      'grafanaDashboard.folderAnnotation=k8s-sidecar-target-directory',
    ]);
    expect(cm?.metadata.labels['dashboards.example.com/grafana']).toBe('keygate');
    expect(cm?.metadata.labels.grafana_dashboard).toBeUndefined();
    expect(cm?.metadata.labels.team).toBe('platform');
    expect(cm?.metadata.namespace).toBe('monitoring');
    expect(cm?.metadata.annotations).toEqual({ 'k8s-sidecar-target-directory': 'Platform' });
    expect(await validateK8sObject(cm as never)).toEqual([]);
  });

  it('renders in sidecar mode too, and without the monitoring CRDs (it needs none)', () => {
    for (const mode of ['gateway', 'sidecar']) {
      const [cm] = dashboards(['grafanaDashboard.enabled=true', `mode=${mode}`]);
      expect(cm?.metadata.labels.grafana_dashboard, mode).toBe('1');
    }
  });
});
