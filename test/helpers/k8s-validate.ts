import * as k8s from '@kubernetes/client-node';

type AttributeMap = Array<{ name: string; baseName: string; type: string }>;
type Model = { getAttributeTypeMap(): AttributeMap };

/** Kubernetes kinds the chart renders → client-node model class (for the field lists). */
const MODEL_BY_KIND: Record<string, string> = {
  'v1/ConfigMap': 'V1ConfigMap',
  'v1/Secret': 'V1Secret',
  'v1/Service': 'V1Service',
  'v1/ServiceAccount': 'V1ServiceAccount',
  'v1/Pod': 'V1Pod',
  'v1/PersistentVolumeClaim': 'V1PersistentVolumeClaim',
  'apps/v1/Deployment': 'V1Deployment',
  'batch/v1/Job': 'V1Job',
  'networking.k8s.io/v1/Ingress': 'V1Ingress',
  'networking.k8s.io/v1/NetworkPolicy': 'V1NetworkPolicy',
  'policy/v1/PodDisruptionBudget': 'V1PodDisruptionBudget',
  'autoscaling/v2/HorizontalPodAutoscaler': 'V2HorizontalPodAutoscaler',
  'rbac.authorization.k8s.io/v1/Role': 'V1Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'V1RoleBinding',
};

/**
 * CRDs have no client-node model: the fields the chart renders are checked against these
 * lists, copied from the CRDs' documented specs (prometheus-operator v0.7x ServiceMonitor
 * and PrometheusRule,
 * Gateway API v1 HTTPRoute). A field not listed is an error, as for the core kinds.
 */
const CRD_FIELDS: Record<string, Record<string, string[]>> = {
  'monitoring.coreos.com/v1/ServiceMonitor': {
    '': ['apiVersion', 'kind', 'metadata', 'spec'],
    spec: [
      'endpoints',
      'selector',
      'namespaceSelector',
      'jobLabel',
      'targetLabels',
      'podTargetLabels',
      'sampleLimit',
    ],
    'spec.endpoints[]': [
      'port',
      'targetPort',
      'path',
      'scheme',
      'interval',
      'scrapeTimeout',
      'params',
      'honorLabels',
      'relabelings',
      'metricRelabelings',
      'tlsConfig',
      'bearerTokenSecret',
      'authorization',
      'basicAuth',
    ],
    'spec.selector': ['matchLabels', 'matchExpressions'],
  },
  'monitoring.coreos.com/v1/PrometheusRule': {
    '': ['apiVersion', 'kind', 'metadata', 'spec'],
    spec: ['groups'],
    'spec.groups[]': ['name', 'interval', 'rules', 'limit', 'partial_response_strategy'],
    'spec.groups[].rules[]': [
      'alert',
      'record',
      'expr',
      'for',
      'keep_firing_for',
      'labels',
      'annotations',
    ],
  },
  'gateway.networking.k8s.io/v1/HTTPRoute': {
    '': ['apiVersion', 'kind', 'metadata', 'spec'],
    spec: ['parentRefs', 'hostnames', 'rules'],
    'spec.parentRefs[]': ['group', 'kind', 'namespace', 'name', 'sectionName', 'port'],
    'spec.rules[]': ['matches', 'filters', 'backendRefs', 'timeouts', 'name'],
    'spec.rules[].matches[]': ['path', 'headers', 'queryParams', 'method'],
    'spec.rules[].matches[].path': ['type', 'value'],
    'spec.rules[].backendRefs[]': [
      'group',
      'kind',
      'name',
      'namespace',
      'port',
      'weight',
      'filters',
    ],
  },
};

const PRIMITIVES = new Set([
  'string',
  'number',
  'boolean',
  'Date',
  'object',
  'any',
  'IntOrString',
  'Buffer',
]);

function walk(value: unknown, type: string, path: string, errors: string[]): void {
  if (value === null || value === undefined || PRIMITIVES.has(type)) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return void errors.push(`${path}: expected a list`);
    for (const [i, item] of value.entries())
      walk(item, array[1] as string, `${path}[${i}]`, errors);
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    for (const [k, v] of Object.entries(value as object))
      walk(v, map[1] as string, `${path}.${k}`, errors);
    return;
  }
  const model = (k8s as unknown as Record<string, Model | undefined>)[type];
  if (!model?.getAttributeTypeMap) return; // enums and aliases are plain strings
  if (typeof value !== 'object' || Array.isArray(value))
    return void errors.push(`${path}: expected an object (${type})`);
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [key, child] of Object.entries(value as object)) {
    const childType = fields.get(key);
    if (childType === undefined) errors.push(`${path}.${key}: no such field in ${type}`);
    else walk(child, childType, `${path}.${key}`, errors);
  }
}

function walkCrd(
  value: unknown,
  fields: Record<string, string[]>,
  path: string,
  errors: string[],
): void {
  if (Array.isArray(value)) {
    for (const item of value) walkCrd(item, fields, `${path}[]`, errors);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  const allowed = fields[path];
  if (allowed === undefined) return; // a free-form part (labels, metadata) not listed
  for (const [key, child] of Object.entries(value)) {
    if (!allowed.includes(key)) errors.push(`${path || '(root)'}.${key}: not a field of this CRD`);
    else walkCrd(child, fields, path ? `${path}.${key}` : key, errors);
  }
}

/** Kinds kubernetes-models validates (types, required fields, formats). */
async function modelClass(apiVersion: string, kind: string) {
  const group = apiVersion.includes('/') ? apiVersion : `v1`;
  const spec =
    apiVersion === 'monitoring.coreos.com/v1'
      ? '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1'
      : apiVersion === 'gateway.networking.k8s.io/v1'
        ? '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1'
        : `kubernetes-models/${group}`;
  const mod = (await import(spec)) as Record<string, new (data: unknown) => { validate(): void }>;
  return mod[kind];
}

/** All problems with one rendered object: schema errors (kubernetes-models) and unknown fields. */
export async function validateK8sObject(object: {
  apiVersion?: string;
  kind?: string;
}): Promise<string[]> {
  const id = `${object.apiVersion}/${object.kind}`;
  const errors: string[] = [];
  const Model = await modelClass(object.apiVersion ?? '', object.kind ?? '');
  if (!Model) return [`${id}: unknown kind`];
  try {
    new Model(object).validate();
  } catch (err) {
    errors.push(`${id}: ${String(err)}`);
  }
  const crd = CRD_FIELDS[id];
  if (crd) walkCrd(object, crd, '', errors);
  else if (MODEL_BY_KIND[id]) walk(object, MODEL_BY_KIND[id] as string, id, errors);
  else errors.push(`${id}: no field list to check it against`);
  return errors;
}
