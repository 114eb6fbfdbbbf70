import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { runCli, writeTempConfig } from '../helpers/cli.js';
import { validateK8sObject } from '../helpers/k8s-validate.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CHART = join(ROOT, 'helm/keygate');
/** $HELM, else helm on PATH, else the stand-in .ci/run builds into .tools/. */
const HELM =
  process.env.HELM ??
  (spawnSync('helm', ['version'], { encoding: 'utf8' }).error === undefined
    ? 'helm'
    : join(ROOT, '.tools/helm-render'));
const CI_VALUES = readdirSync(join(CHART, 'ci'))
  .filter((f) => f.endsWith('-values.yaml'))
  .sort();

function helmAvailable(): void {
  const probe = spawnSync(HELM, ['template', '--help'], { encoding: 'utf8' });
  if (probe.error) {
    throw new Error(
      `no helm-compatible "template" command: ${HELM} not found. Install helm, or build the stand-in with ` +
        '`../shared/tools/helm-render/build.sh .tools/helm-render` (from the project root; .ci/run does this) ' +
        'or set HELM to a helm-compatible binary.',
    );
  }
}

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  [k: string]: unknown;
};

function render(
  valuesFiles: string[],
  extra: string[] = [],
): { ok: boolean; objects: K8sObject[]; stderr: string } {
  helmAvailable();
  const args = [
    'template',
    'kg',
    CHART,
    '-a',
    'monitoring.coreos.com/v1',
    ...valuesFiles.flatMap((f) => ['-f', f]),
    ...extra,
  ];
  const result = spawnSync(HELM, args, { encoding: 'utf8' });
  if (result.status !== 0) return { ok: false, objects: [], stderr: result.stderr };
  const objects = parseAllDocuments(result.stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
  return { ok: true, objects, stderr: result.stderr };
}

function mergeValues(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (
    base &&
    over &&
    typeof base === 'object' &&
    typeof over === 'object' &&
    !Array.isArray(base) &&
    !Array.isArray(over)
  ) {
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [k, v] of Object.entries(over as Record<string, unknown>))
      out[k] = mergeValues(out[k], v);
    return out;
  }
  return over;
}

const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as object;
const validateValues = new Ajv({ allErrors: true, strict: false }).compile(schema);
const defaults = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as unknown;
const valuesOf = (file: string) => mergeValues(defaults, parse(readFileSync(file, 'utf8')));

function find(objects: K8sObject[], kind: string): K8sObject {
  const found = objects.find((o) => o.kind === kind);
  if (!found) throw new Error(`no ${kind} rendered`);
  return found;
}

type Container = {
  name: string;
  ports: Array<{ name: string; containerPort: number }>;
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown>;
};

describe.each(CI_VALUES)('helm/keygate with ci/%s', (file) => {
  const path = join(CHART, 'ci', file);

  it('the values pass values.schema.json', () => {
    expect(validateValues(valuesOf(path)), JSON.stringify(validateValues.errors)).toBe(true);
  });

  it('renders, and every object validates strictly against its Kubernetes schema', async () => {
    const { ok, objects, stderr } = render([path]);
    expect(ok, stderr).toBe(true);
    expect(objects.length).toBeGreaterThan(0);
    for (const object of objects) {
      expect(await validateK8sObject(object), `${object.kind} ${object.metadata?.name}`).toEqual(
        [],
      );
    }
  });

  it("the ConfigMap's keygate.yaml is exactly what `keygate config check` accepts", async () => {
    const { objects } = render([path]);
    const text = (find(objects, 'ConfigMap') as unknown as { data: Record<string, string> }).data[
      'keygate.yaml'
    ] as string;
    const result = await runCli(['config', 'check', writeTempConfig(text)]);
    expect(result.code, result.stderr).toBe(0);
  });

  it('probes hit /healthz and /readyz on the ops port; the container runs locked down', () => {
    const { objects } = render([path]);
    const pod = objects.find((o) => o.kind === 'Deployment' || o.kind === 'Pod') as K8sObject;
    const spec = (
      pod.kind === 'Deployment'
        ? (pod as never as { spec: { template: { spec: unknown } } }).spec.template.spec
        : (pod as never as { spec: unknown }).spec
    ) as {
      containers: Container[];
      terminationGracePeriodSeconds: number;
      securityContext: Record<string, unknown>;
    };
    const keygate = spec.containers.find((c) => c.name === 'keygate') as Container;
    const values = valuesOf(path) as {
      ports: { ops: number };
      shutdown: { drainTimeoutSeconds: number };
    };
    expect(keygate.ports.find((p) => p.name === 'ops')?.containerPort).toBe(values.ports.ops);
    expect(keygate.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'ops' });
    expect(keygate.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'ops' });
    expect(keygate.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true });
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(values.shutdown.drainTimeoutSeconds);
  });
});

describe('chart wiring', () => {
  const gateway = join(CHART, 'ci/gateway-values.yaml');
  const checksum = (objects: K8sObject[]) =>
    (
      find(objects, 'Deployment') as never as {
        spec: { template: { metadata: { annotations: Record<string, string> } } };
      }
    ).spec.template.metadata.annotations['checksum/config'];

  it('the config checksum is stable, and changes when a route changes (pods roll)', () => {
    const first = checksum(render([gateway]).objects);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(checksum(render([gateway]).objects)).toBe(first);
    const changed = writeTempConfig({
      config: {
        routes: [{ name: 'only', methods: ['GET'], path: '/model/allocation', scopes: ['read'] }],
      },
    });
    expect(checksum(render([gateway, changed]).objects)).not.toBe(first);
  });

  describe('configReload.inPlace (config reload without a rollout)', () => {
    const annotations = (objects: K8sObject[]) =>
      (
        find(objects, 'Deployment') as never as {
          spec: { template: { metadata: { annotations: Record<string, string> } } };
        }
      ).spec.template.metadata.annotations;
    const inPlace = writeTempConfig({ configReload: { inPlace: true } });
    const withValues = (config: Record<string, unknown>) =>
      writeTempConfig({ configReload: { inPlace: true }, config });

    it('off by default: checksum/config over the whole ConfigMap, no restart-only checksum', () => {
      const a = annotations(render([gateway]).objects);
      expect(a['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
      expect(a['checksum/config-restart']).toBeUndefined();
    });

    it('on: a route, role, identity header or per-request limit change does not roll the pods', () => {
      const first = annotations(render([gateway, inPlace]).objects);
      expect(first['checksum/config']).toBeUndefined();
      expect(first['checksum/config-restart']).toMatch(/^[0-9a-f]{64}$/);
      const reloadable = withValues({
        routes: [{ name: 'only', methods: ['GET'], path: '/model/allocation', scopes: ['read'] }],
        roles: { admin: ['read', 'write', 'admin'], reader: ['read'] },
        identityHeaders: { account: 'X-Tenant' },
        trustedProxies: ['10.0.0.0/8'],
        listen: { maxInflightPerAccount: 8, bodyIdleTimeout: '5s' },
        upstream: {
          url: 'http://kubecost-aggregator:9004',
          stripPrefix: '/api',
          dropHeaders: ['x-internal-*'],
        },
        log: { level: 'warn' },
      });
      expect(annotations(render([gateway, inPlace, reloadable]).objects)).toEqual(first);
    });

    it.each([
      ['upstream.url', { upstream: { url: 'http://other-aggregator:9004' } }],
      ['keys.cacheTtl', { keys: { cacheTtl: '1m' } }],
      ['listen.requestTimeout', { listen: { requestTimeout: '60s' } }],
      ['metrics.accountLabel', { metrics: { accountLabel: true } }], // gateway-values sets false
    ])('on: a restart-only change (%s) still rolls the pods', (_path, config) => {
      const first = annotations(render([gateway, inPlace]).objects)['checksum/config-restart'];
      const changed = annotations(render([gateway, withValues(config)]).objects);
      expect(changed['checksum/config-restart']).not.toBe(first);
    });

    it('the ConfigMap is mounted as a directory (no subPath), so the kubelet can update it in place', () => {
      for (const values of [[gateway], [gateway, inPlace]]) {
        const deployment = find(render(values).objects, 'Deployment') as never as {
          spec: {
            template: {
              spec: {
                containers: Array<{ volumeMounts: Array<{ name: string; subPath?: string }> }>;
                volumes: Array<{ name: string; configMap?: { name: string } }>;
              };
            };
          };
        };
        const pod = deployment.spec.template.spec;
        const configVolumes = pod.volumes
          .filter((v) => v.configMap !== undefined)
          .map((v) => v.name);
        const mounts = pod.containers.flatMap((c) => c.volumeMounts);
        const configMounts = mounts.filter((m) => configVolumes.includes(m.name));
        expect(configMounts.length).toBeGreaterThan(0);
        expect(configMounts.filter((m) => m.subPath !== undefined)).toEqual([]);
      }
    });
  });

  it('a typo in values is refused by the schema', () => {
    const typo = mergeValues(defaults, { replicaCont: 2 });
    expect(validateValues(typo)).toBe(false);
    expect(JSON.stringify(validateValues.errors)).toContain('replicaCont');
    const wrongType = mergeValues(defaults, { replicaCount: 'three' });
    expect(validateValues(wrongType)).toBe(false);
    const nested = mergeValues(defaults, {
      config: { upstream: { url: 'http://x', stripPrefx: '/model' } },
    });
    expect(validateValues(nested)).toBe(false);
  });

  it('store.type file with replicaCount 3 fails rendering with a clear message', () => {
    const bad = writeTempConfig({ store: { type: 'file' }, replicaCount: 3 });
    const { ok, stderr } = render([bad]);
    expect(ok).toBe(false);
    expect(stderr).toContain('store.type=file');
    expect(stderr).toContain('replicaCount: 1');
  });

  it('redis without a URL, Secret, Sentinel or Cluster fails with a clear message', () => {
    const { ok, stderr } = render([]);
    expect(ok).toBe(false);
    expect(stderr).toContain('store.type=redis needs one of');
  });

  it('the Redis URL reaches keygate from a Secret, never from the ConfigMap', () => {
    const { objects } = render([gateway]);
    const configText = JSON.stringify(find(objects, 'ConfigMap'));
    expect(configText).not.toContain('changeme');
    const secret = objects.find((o) => o.kind === 'Secret') as never as {
      stringData: Record<string, string>;
    };
    expect(secret.stringData['redis-url']).toContain('changeme');
  });

  it('the ServiceMonitor appears only where monitoring.coreos.com/v1 exists', () => {
    const monitoring = join(CHART, 'ci/monitoring-values.yaml');
    expect(render([monitoring]).objects.some((o) => o.kind === 'ServiceMonitor')).toBe(true);
    const args = ['template', 'kg', CHART, '-f', monitoring];
    const out = execFileSync(HELM, args, { encoding: 'utf8' });
    expect(out).not.toContain('kind: ServiceMonitor');
  });

  it('the PrometheusRule appears only where monitoring.coreos.com/v1 exists, and validates', async () => {
    const monitoring = join(CHART, 'ci/monitoring-values.yaml');
    const { objects } = render([monitoring]);
    expect(await validateK8sObject(find(objects, 'PrometheusRule'))).toEqual([]);
    const rule = find(objects, 'PrometheusRule') as never as {
      metadata: { labels: Record<string, string> };
      spec: { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    };
    expect(rule.metadata.labels.release).toBe('prometheus');
    const rules = rule.spec.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert).sort()).toEqual([
      'KeygateConfigReloadFailing',
      'KeygateDown',
      'KeygateHigh5xxRatio',
      'KeygateKeyStoreDown',
      'KeygateKeysExpiringInUse',
      'KeygateUpstreamErrors',
      'KeygateVerifyShedding',
    ]);
    // The job the ServiceMonitor gives its targets: the Service's name.
    expect(rules.find((r) => r.alert === 'KeygateDown')?.expr).toContain('job="kg-keygate"');
    const out = execFileSync(HELM, ['template', 'kg', CHART, '-f', monitoring], {
      encoding: 'utf8',
    });
    expect(out).not.toContain('kind: PrometheusRule');
  });

  it('no PrometheusRule unless prometheusRule.enabled, nor in mode sidecar', () => {
    const gatewayOnly = render([gateway]);
    expect(gatewayOnly.ok, gatewayOnly.stderr).toBe(true);
    expect(gatewayOnly.objects.some((o) => o.kind === 'PrometheusRule')).toBe(false);
    const sidecar = render(
      [join(CHART, 'ci/sidecar-values.yaml')],
      ['--set', 'prometheusRule.enabled=true'],
    );
    expect(sidecar.ok, sidecar.stderr).toBe(true);
    expect(sidecar.objects.some((o) => o.kind === 'PrometheusRule')).toBe(false);
  });

  it('values.schema.json refuses a prometheusRule.job that would break out of the PromQL string', () => {
    const values = mergeValues(defaults, { prometheusRule: { job: 'x"} or vector(1) #' } });
    expect(validateValues(values)).toBe(false);
    const bad = mergeValues(defaults, { prometheusRule: { thresholds: { downFor: '5 minutes' } } });
    expect(validateValues(bad)).toBe(false);
  });

  type PodSpec = {
    containers: Array<{
      name: string;
      volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
    }>;
    volumes: Array<{
      name: string;
      secret?: { secretName: string; items: Array<{ key: string; path: string }> };
    }>;
  };
  const podSpec = (objects: K8sObject[]) =>
    (find(objects, 'Deployment') as never as { spec: { template: { spec: PodSpec } } }).spec
      .template.spec;
  const opsConfig = (objects: K8sObject[]) =>
    (
      parse(
        (find(objects, 'ConfigMap') as never as { data: Record<string, string> }).data[
          'keygate.yaml'
        ] as string,
      ) as { ops: Record<string, unknown> }
    ).ops;
  const endpoint = (objects: K8sObject[]) =>
    (
      find(objects, 'ServiceMonitor') as never as {
        spec: { endpoints: Array<Record<string, unknown>> };
      }
    ).spec.endpoints[0] as Record<string, unknown>;

  it.each(CI_VALUES)(
    'ops listens on 0.0.0.0 inside the pod (probes, Prometheus) with ci/%s',
    (file) => {
      const { objects } = render([join(CHART, 'ci', file)]);
      expect(opsConfig(objects).host).toBe('0.0.0.0');
    },
  );

  it('metrics.auth: the Secret is mounted as ops.metricsTokenFile and the ServiceMonitor presents it', () => {
    const { ok, objects, stderr } = render([join(CHART, 'ci/metrics-auth-values.yaml')]);
    expect(ok, stderr).toBe(true);
    const tokenFile = opsConfig(objects).metricsTokenFile as string;
    expect(tokenFile).toBe('/etc/keygate-metrics/token');
    const spec = podSpec(objects);
    const volume = spec.volumes.find((v) => v.secret?.secretName === 'keygate-metrics');
    expect(volume?.secret?.items).toEqual([{ key: 'token', path: 'token' }]);
    const mount = spec.containers
      .find((c) => c.name === 'keygate')
      ?.volumeMounts.find((m) => m.name === volume?.name);
    expect(mount).toMatchObject({ readOnly: true });
    expect(`${mount?.mountPath}/token`).toBe(tokenFile);
    expect(endpoint(objects)).toMatchObject({
      port: 'ops',
      path: '/metrics',
      authorization: { type: 'Bearer', credentials: { name: 'keygate-metrics', key: 'token' } },
    });
    // The token itself is never in the chart's output, only the Secret's name.
    const policy = find(objects, 'NetworkPolicy') as never as {
      spec: { ingress: Array<{ ports: Array<{ port: string }>; from?: unknown[] }> };
    };
    const opsRule = policy.spec.ingress.find((r) => r.ports.some((p) => p.port === 'ops'));
    expect(opsRule?.from).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ]);
  });

  it('metrics.auth with another key name maps that key to the token file', () => {
    const values = writeTempConfig({
      redis: { existingSecret: { name: 'r', key: 'url' } },
      metrics: { auth: { existingSecret: { name: 'prom', key: 'bearer' } } },
    });
    const { objects } = render([values]);
    const volume = podSpec(objects).volumes.find((v) => v.secret?.secretName === 'prom');
    expect(volume?.secret?.items).toEqual([{ key: 'bearer', path: 'token' }]);
    expect(opsConfig(objects).metricsTokenFile).toBe('/etc/keygate-metrics/token');
  });

  it('without metrics.auth: no token file, no mount, no authorization on the ServiceMonitor', () => {
    const { objects } = render([join(CHART, 'ci/monitoring-values.yaml')]);
    expect(opsConfig(objects)).not.toHaveProperty('metricsTokenFile');
    expect(JSON.stringify(podSpec(objects))).not.toContain('keygate-metrics');
    expect(endpoint(objects)).not.toHaveProperty('authorization');
  });

  type CredentialPod = {
    containers: Array<{
      name: string;
      volumeMounts: Array<{
        name: string;
        mountPath: string;
        readOnly?: boolean;
        subPath?: string;
      }>;
    }>;
    volumes: PodSpec['volumes'];
  };
  const upstreamConfig = (objects: K8sObject[]) =>
    (
      parse(
        (find(objects, 'ConfigMap') as never as { data: Record<string, string> }).data[
          'keygate.yaml'
        ] as string,
      ) as { upstream: Record<string, unknown> }
    ).upstream;

  it('upstreamCredential: the Secret is mounted read-only as a directory (no subPath) and named as upstream.credential.file', () => {
    const { ok, objects, stderr } = render([join(CHART, 'ci/upstream-credential-values.yaml')]);
    expect(ok, stderr).toBe(true);
    const credential = upstreamConfig(objects).credential as { header: string; file: string };
    expect(credential).toEqual({ header: 'X-API-KEY', file: '/etc/keygate-upstream/credential' });
    const spec = podSpec(objects) as unknown as CredentialPod;
    const volume = spec.volumes.find((v) => v.secret?.secretName === 'kubecost-api-key');
    expect(volume?.secret?.items).toEqual([{ key: 'api-key', path: 'credential' }]);
    const mount = spec.containers
      .find((c) => c.name === 'keygate')
      ?.volumeMounts.find((m) => m.name === volume?.name);
    // A subPath mount is a bind of one file: the kubelet's ..data swap never reaches it.
    expect(mount).toEqual({
      name: volume?.name,
      mountPath: '/etc/keygate-upstream',
      readOnly: true,
    });
    expect(`${mount?.mountPath}/credential`).toBe(credential.file);
    // Nowhere a subPath for it, and the chart never carries the value, only the Secret's name.
    expect(JSON.stringify(objects)).not.toMatch(/"subPath":"credential"/);
    expect(objects.some((o) => o.kind === 'Secret' && o.metadata.name === 'kubecost-api-key')).toBe(
      false,
    );
  });

  it('upstreamCredential with another header is rendered and accepted by config check; a reserved one is refused', async () => {
    const custom = writeTempConfig({
      upstreamCredential: { header: 'Authorization' },
    });
    const base = join(CHART, 'ci/upstream-credential-values.yaml');
    const { objects } = render([base, custom]);
    expect(upstreamConfig(objects).credential).toMatchObject({ header: 'Authorization' });
    const hostile = writeTempConfig({ upstreamCredential: { header: 'X-Forwarded-For' } });
    const text = (
      find(render([base, hostile]).objects, 'ConfigMap') as never as {
        data: Record<string, string>;
      }
    ).data['keygate.yaml'] as string;
    const result = await runCli(['config', 'check', writeTempConfig(text)]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('upstream.credential.header');
  });

  it('without upstreamCredential: no credential in the config, no mount', () => {
    const { objects } = render([gateway]);
    expect(upstreamConfig(objects)).not.toHaveProperty('credential');
    expect(JSON.stringify(podSpec(objects))).not.toContain('keygate-upstream');
  });

  it('upstreamCredential values are checked by the schema and the chart', () => {
    const ok = mergeValues(defaults, {
      upstreamCredential: { existingSecret: { name: 's', key: 'k' } },
    });
    expect(validateValues(ok), JSON.stringify(validateValues.errors)).toBe(true);
    for (const bad of [
      { existingSecret: { name: 's', key: '' } },
      { existingSecret: { name: 's' }, value: 'inline-secret' },
      { header: 'X-API-KEY: x' },
    ]) {
      const values = mergeValues(defaults, { upstreamCredential: bad });
      expect(validateValues(values), JSON.stringify(bad)).toBe(false);
    }
    const noKey = writeTempConfig({
      redis: { existingSecret: { name: 'r', key: 'url' } },
      upstreamCredential: { existingSecret: { name: 's', key: '' } },
    });
    const { ok: rendered, stderr } = render([noKey]);
    expect(rendered).toBe(false);
    expect(stderr).toContain('upstreamCredential.existingSecret.key');
  });

  it('metrics.auth values are checked by the schema', () => {
    expect(
      validateValues(
        mergeValues(defaults, { metrics: { auth: { existingSecret: { name: 's' } } } }),
      ),
    ).toBe(true);
    expect(validateValues(mergeValues(defaults, { metrics: { auth: { secret: 's' } } }))).toBe(
      false,
    );
    expect(
      validateValues(
        mergeValues(defaults, { metrics: { auth: { existingSecret: { name: 's', key: '' } } } }),
      ),
    ).toBe(false);
  });
});

describe('request limits and metrics options reach keygate.yaml', () => {
  const keygateYaml = (files: string[]) =>
    parse(
      (find(render(files).objects, 'ConfigMap') as never as { data: Record<string, string> }).data[
        'keygate.yaml'
      ] as string,
    ) as { listen: Record<string, unknown>; metrics: Record<string, unknown> };

  it('config.listen adds limits; the chart keeps the address, port and drain', () => {
    const config = keygateYaml([join(CHART, 'ci/gateway-values.yaml')]);
    expect(config.listen).toMatchObject({
      host: '0.0.0.0',
      maxInflightPerAccount: 32,
      bodyIdleTimeout: '10s',
    });
    expect(config.metrics).toEqual({ accountLabel: false });
    const hostile = writeTempConfig({ config: { listen: { host: '10.0.0.1', port: 1 } } });
    const overridden = keygateYaml([join(CHART, 'ci/gateway-values.yaml'), hostile]);
    expect(overridden.listen).toMatchObject({ host: '0.0.0.0', port: 8080 });
  });

  it('the defaults render the documented limits', () => {
    // Defaults plus only what a render needs (a store): the sentinel case sets nothing else here.
    const config = keygateYaml([join(CHART, 'ci/sentinel-values.yaml')]);
    expect(config.listen).toMatchObject({ bodyIdleTimeout: '15s', maxInflightPerAccount: 64 });
    expect(config.metrics).toEqual({ accountLabel: true });
  });
});

describe('config.mode authz (DESIGN §13): keygate without an upstream, ingress-nginx in front of the Aggregator', () => {
  const authz = join(CHART, 'ci/authz-values.yaml');
  const withIngress = join(CHART, 'ci/authz-ingress-nginx-values.yaml');
  const gateway = join(CHART, 'ci/gateway-values.yaml');
  const keygateYaml = (objects: K8sObject[]) =>
    (find(objects, 'ConfigMap') as never as { data: Record<string, string> }).data[
      'keygate.yaml'
    ] as string;
  const configOf = (objects: K8sObject[]) =>
    parse(keygateYaml(objects)) as Record<string, unknown> & {
      authz?: Record<string, unknown>;
    };
  type Ingress = {
    metadata: { name: string; annotations: Record<string, string> };
    spec: {
      ingressClassName?: string;
      rules: Array<{
        host: string;
        http: {
          paths: Array<{
            path: string;
            pathType: string;
            backend: { service: { name: string; port: { number?: number; name?: string } } };
          }>;
        };
      }>;
    };
  };
  const aggregatorIngress = (objects: K8sObject[]) =>
    objects.find((o) => o.kind === 'Ingress' && o.metadata.name === 'kg-keygate-aggregator') as
      | (K8sObject & Ingress)
      | undefined;
  const failsWith = (values: Record<string, unknown>, ...messages: string[]) => {
    const { ok, stderr } = render([writeTempConfig(values)]);
    expect(ok, 'rendered').toBe(false);
    for (const m of messages) expect(stderr).toContain(m);
  };
  const redis = { redis: { existingSecret: { name: 'r', key: 'url' } } };
  /** NOTES.txt as helm install prints it: helm template never renders it, so a copy of the
   * chart renders the same text through tpl into a ConfigMap. */
  const notes = (values: Record<string, unknown>): string => {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-chart-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    cpSync(CHART, dir, { recursive: true });
    writeFileSync(
      join(dir, 'notes-probe.txt'),
      readFileSync(join(CHART, 'templates/NOTES.txt'), 'utf8'),
    );
    writeFileSync(
      join(dir, 'templates/zz-notes-probe.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes-probe}\ndata:\n  notes: {{ tpl (.Files.Get "notes-probe.txt") . | toJson }}\n',
    );
    const result = spawnSync(
      HELM,
      ['template', 'kg', dir, '-n', 'kubecost', '-f', writeTempConfig(values)],
      { encoding: 'utf8' },
    );
    expect(result.status, result.stderr).toBe(0);
    const probe = parseAllDocuments(result.stdout)
      .map((d) => d.toJS() as K8sObject | null)
      .find((o) => o?.metadata.name === 'notes-probe') as never as { data: { notes: string } };
    return probe.data.notes;
  };

  it('authz renders mode authz and no upstream in keygate.yaml, and never sets KEYGATE_MODE (the ConfigMap is the source)', () => {
    for (const file of [authz, withIngress]) {
      const { ok, objects, stderr } = render([file]);
      expect(ok, stderr).toBe(true);
      const config = configOf(objects);
      expect(config.mode).toBe('authz');
      // values.yaml has a default config.upstream: authz mode drops it whatever it says.
      expect(config).not.toHaveProperty('upstream');
      expect(keygateYaml(objects)).not.toContain('kubecost-aggregator');
      expect(JSON.stringify(objects)).not.toContain('KEYGATE_MODE');
    }
    expect(configOf(render([authz]).objects).authz).toEqual({ cacheTtl: 0 });
    expect(configOf(render([withIngress]).objects).authz).toEqual({ cacheTtl: '5s' });
  });

  it('proxy mode (the default) renders keygate.yaml as before: an upstream, no mode, no authz', () => {
    const config = configOf(render([gateway]).objects);
    expect(config).not.toHaveProperty('mode');
    expect(config).not.toHaveProperty('authz');
    expect(config.upstream).toMatchObject({ url: 'http://kubecost-aggregator:9004' });
  });

  it('config.mode both keeps the upstream and the mode, and `keygate config check` accepts it', async () => {
    const values = writeTempConfig({ config: { mode: 'both', authz: { cacheTtl: '2s' } } });
    const { ok, objects, stderr } = render([gateway, values]);
    expect(ok, stderr).toBe(true);
    const config = configOf(objects);
    expect(config.mode).toBe('both');
    expect(config.upstream).toMatchObject({ url: 'http://kubecost-aggregator:9004' });
    const result = await runCli(['config', 'check', writeTempConfig(keygateYaml(objects))]);
    expect(result.code, result.stderr).toBe(0);
  });

  it('the authz ConfigMap is refused by `keygate config check` once mode is taken out (it is what lets it run without an upstream)', async () => {
    const text = keygateYaml(render([authz]).objects).replace(/^mode: authz\n/m, '');
    expect(text).not.toContain('mode:');
    const result = await runCli(['config', 'check', writeTempConfig(text)]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('upstream');
  });

  it('authz.ingressNginx: an Ingress for the Aggregator with exactly the two auth annotations, no snippet', () => {
    const { ok, objects, stderr } = render([withIngress], ['-n', 'kubecost']);
    expect(ok, stderr).toBe(true);
    const ingress = aggregatorIngress(objects);
    expect(ingress).toBeDefined();
    const annotations = ingress?.metadata.annotations ?? {};
    expect(annotations['nginx.ingress.kubernetes.io/auth-url']).toBe(
      'http://kg-keygate.kubecost.svc.cluster.local:8080/_keygate/authz',
    );
    // Renamed identity headers (config.identityHeaders), then the two credential headers.
    expect(annotations['nginx.ingress.kubernetes.io/auth-response-headers']).toBe(
      'X-Kg-Account,X-Kg-Key,X-Kg-Role,Authorization,X-API-KEY',
    );
    expect(Object.keys(annotations).filter((k) => /snippet/i.test(k))).toEqual([]);
    expect(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout']).toBe('300');
    expect(ingress?.spec.ingressClassName).toBe('nginx');
    const path = ingress?.spec.rules[0]?.http.paths[0];
    expect(path).toMatchObject({
      path: '/model(/|$)(.*)',
      pathType: 'ImplementationSpecific',
      backend: { service: { name: 'kubecost-aggregator', port: { number: 9004 } } },
    });
    // The client-facing Ingress goes to the Aggregator, never to keygate (which forwards nothing).
    expect(objects.filter((o) => o.kind === 'Ingress')).toHaveLength(1);
  });

  it('authz.ingressNginx with the default identity headers, another service port, a named Aggregator port', () => {
    const values = writeTempConfig({
      config: {
        identityHeaders: {
          account: 'X-Keygate-Account',
          keyId: 'X-Keygate-Key-Id',
          role: 'X-Keygate-Role',
        },
      },
      service: { port: 80 },
      authz: { ingressNginx: { aggregator: { serviceName: 'aggregator', port: 'tcp-api' } } },
    });
    const { ok, objects, stderr } = render([withIngress, values], ['-n', 'cost']);
    expect(ok, stderr).toBe(true);
    const ingress = aggregatorIngress(objects);
    expect(ingress?.metadata.annotations).toMatchObject({
      'nginx.ingress.kubernetes.io/auth-url':
        'http://kg-keygate.cost.svc.cluster.local:80/_keygate/authz',
      'nginx.ingress.kubernetes.io/auth-response-headers':
        'X-Keygate-Account,X-Keygate-Key-Id,X-Keygate-Role,Authorization,X-API-KEY',
    });
    expect(ingress?.spec.rules[0]?.http.paths[0]?.backend.service).toEqual({
      name: 'aggregator',
      port: { name: 'tcp-api' },
    });
  });

  it('without authz.ingressNginx.enabled no Aggregator Ingress is rendered', () => {
    expect(aggregatorIngress(render([authz]).objects)).toBeUndefined();
    expect(aggregatorIngress(render([gateway]).objects)).toBeUndefined();
  });

  it('NOTES in authz mode prints the two annotations to paste when the chart renders no Ingress', () => {
    const text = notes({ ...redis, config: { mode: 'authz' } });
    expect(text).toContain('authz mode');
    expect(text).toContain(
      'nginx.ingress.kubernetes.io/auth-url: "http://kg-keygate.kubecost.svc.cluster.local:8080/_keygate/authz"',
    );
    expect(text).toContain(
      'nginx.ingress.kubernetes.io/auth-response-headers: "X-Keygate-Account,X-Keygate-Key-Id,X-Keygate-Role,Authorization,X-API-KEY"',
    );
    expect(text).not.toMatch(/snippet:/);
    const enabled = notes({
      ...redis,
      config: { mode: 'authz' },
      authz: { ingressNginx: { enabled: true } },
    });
    expect(enabled).toContain('kg-keygate-aggregator');
    expect(enabled).not.toContain('auth-url:');
    const proxy = notes(redis);
    expect(proxy).not.toContain('auth-url');
    expect(proxy).toContain('in front of http://kubecost-aggregator:9004');
  });

  it('NetworkPolicy in authz mode: no egress to the Aggregator, the proxy port only from the ingress controller namespace', () => {
    type Policy = {
      spec: {
        ingress: Array<{ ports: Array<{ port: string | number }>; from?: unknown[] }>;
        egress: Array<{ ports: Array<{ port: string | number }> }>;
      };
    };
    const policyOf = (files: string[]) =>
      find(render(files).objects, 'NetworkPolicy') as never as Policy;
    const egressPorts = (p: Policy) => p.spec.egress.flatMap((r) => r.ports.map((x) => x.port));
    const httpFrom = (p: Policy) =>
      p.spec.ingress.find((r) => r.ports.some((x) => x.port === 'http'))?.from;
    const authzPolicy = policyOf([authz]);
    expect(egressPorts(authzPolicy)).not.toContain(9004);
    expect(egressPorts(authzPolicy)).toEqual([53, 53, 6379, 26379]);
    expect(httpFrom(authzPolicy)).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
    ]);
    // ingressFrom adds peers (e.g. admin API callers) beside the controller's namespace.
    const admin = { podSelector: { matchLabels: { role: 'keygate-admin' } } };
    const both = writeTempConfig({
      networkPolicy: { ingressControllerNamespace: 'nginx-system', ingressFrom: [admin] },
    });
    expect(httpFrom(policyOf([authz, both]))).toEqual([
      admin,
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'nginx-system' } } },
    ]);
    // Proxy mode is unchanged: the upstream egress rule, ingressFrom as given.
    const proxyPolicy = policyOf([gateway]);
    expect(egressPorts(proxyPolicy)).toContain(9004);
    expect(httpFrom(proxyPolicy)).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
    ]);
    const proxyNoFrom = writeTempConfig({ networkPolicy: { ingressFrom: [] } });
    expect(httpFrom(policyOf([gateway, proxyNoFrom]))).toBeUndefined();
  });

  it('authz mode keeps the probes, the Service and the ops port', () => {
    const { objects } = render([authz]);
    const service = find(objects, 'Service') as never as {
      spec: { ports: Array<{ name: string; port: number }> };
    };
    expect(service.spec.ports.map((p) => [p.name, p.port])).toEqual([
      ['http', 8080],
      ['ops', 9464],
    ]);
    expect(configOf(objects).ops).toEqual({ host: '0.0.0.0', port: 9464 });
  });

  it('sidecar + config.mode authz fails with a clear message', () => {
    failsWith(
      { ...redis, mode: 'sidecar', config: { mode: 'authz' } },
      'config.mode=authz needs mode=gateway',
    );
  });

  it('proxy (or both) mode without an upstream fails with a clear message; authz does not need one', () => {
    for (const mode of ['proxy', 'both']) {
      failsWith(
        { ...redis, config: { mode, upstream: null } },
        `config.upstream.url is required in config.mode=${mode}`,
      );
    }
    failsWith({ ...redis, config: { upstream: { url: '' } } }, 'config.upstream.url is required');
    const { ok, stderr } = render([
      writeTempConfig({ ...redis, config: { mode: 'authz', upstream: null } }),
    ]);
    expect(ok, stderr).toBe(true);
  });

  it('KEYGATE_MODE in extraEnv is refused: config.mode is the one source', () => {
    failsWith(
      { ...redis, config: { mode: 'authz' }, extraEnv: [{ name: 'KEYGATE_MODE', value: 'proxy' }] },
      'not KEYGATE_MODE in extraEnv',
    );
    failsWith(
      { ...redis, extraEnv: [{ name: 'KEYGATE_MODE', value: 'authz' }] },
      'not KEYGATE_MODE in extraEnv',
    );
  });

  it('authz values that cannot work are refused at render time', () => {
    failsWith(
      {
        ...redis,
        config: { mode: 'authz' },
        upstreamCredential: { existingSecret: { name: 's', key: 'k' } },
      },
      'config.mode=authz calls no upstream',
    );
    failsWith(
      { ...redis, authz: { ingressNginx: { enabled: true } } },
      'authz.ingressNginx needs config.mode=authz or both',
    );
    failsWith(
      {
        ...redis,
        mode: 'sidecar',
        config: { mode: 'both' },
        authz: { ingressNginx: { enabled: true } },
      },
      'authz.ingressNginx needs mode=gateway',
    );
    for (const port of [9007, 9008]) {
      failsWith(
        {
          ...redis,
          config: { mode: 'authz' },
          authz: { ingressNginx: { enabled: true, aggregator: { port } } },
        },
        `authz.ingressNginx.aggregator.port ${port}`,
      );
    }
    // The two annotations that keep keygate on the path and the key off it cannot be replaced,
    // in any spelling ingress-nginx might be handed.
    for (const name of [
      'nginx.ingress.kubernetes.io/auth-url',
      'nginx.ingress.kubernetes.io/auth-response-headers',
      'Nginx.Ingress.Kubernetes.IO/Auth-Url',
    ]) {
      failsWith(
        {
          ...redis,
          config: { mode: 'authz' },
          authz: { ingressNginx: { enabled: true, extraAnnotations: { [name]: 'http://evil/' } } },
        },
        `may not set ${name}`,
      );
    }
    failsWith({ ...redis, config: { mode: 'Authz' } }, 'config.mode must be proxy, authz or both');
  });

  it('values.schema.json: config.mode is proxy|authz|both; upstream optional only in authz; authz values checked', () => {
    const valid = (v: object) => validateValues(mergeValues(defaults, v));
    for (const mode of ['proxy', 'authz', 'both']) expect(valid({ config: { mode } })).toBe(true);
    for (const mode of ['gateway', 'Authz', 'AUTHZ', '', 'sidecar', 1, null]) {
      expect(valid({ config: { mode } }), String(mode)).toBe(false);
    }
    const withoutUpstream = (mode?: string) => {
      // A deep copy: mergeValues shares the parts it does not override with `defaults`.
      const values = structuredClone(
        mergeValues(defaults, mode === undefined ? {} : { config: { mode } }),
      ) as { config: Record<string, unknown> };
      delete values.config.upstream;
      return validateValues(values);
    };
    expect(withoutUpstream('authz')).toBe(true);
    expect(withoutUpstream('proxy')).toBe(false);
    expect(withoutUpstream('both')).toBe(false);
    expect(withoutUpstream()).toBe(false);
    expect(valid({ config: { authz: { cacheTtl: '30s' } } })).toBe(true);
    expect(valid({ config: { authz: { cacheTTL: '30s' } } })).toBe(false);
    expect(valid({ config: { authz: { cacheTtl: 'soon' } } })).toBe(false);
    for (const port of [9007, 9008, 0, 70000, 'Not A Name']) {
      expect(valid({ authz: { ingressNginx: { aggregator: { port } } } }), String(port)).toBe(
        false,
      );
    }
    expect(valid({ authz: { ingressNginx: { aggregator: { port: 'http' } } } })).toBe(true);
    expect(valid({ authz: { ingressNginx: { snippet: 'more_set_headers x' } } })).toBe(false);
    expect(valid({ authz: { ingressNginx: { extraAnnotations: { a: 1 } } } })).toBe(false);
    expect(valid({ networkPolicy: { ingressControllerNamespace: 'Ingress_Nginx' } })).toBe(false);
  });
});
