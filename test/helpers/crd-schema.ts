/**
 * A strict validator for the subset of OpenAPI v3 that Kubernetes CRD schemas use
 * (type, properties, additionalProperties, required, items, enum, anyOf/oneOf/not, min/max
 * bounds, pattern, x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields), to check
 * shipped manifests of data planes that cannot run in CI against their published CRDs.
 *
 * Stricter than the API server on purpose: an unknown field is an error here, where Kubernetes
 * would silently prune it (a misspelled `trustForwardHeader` would vanish and leave Traefik's
 * default). CEL rules (x-kubernetes-validations) are not evaluated. `format` is not checked.
 */
export interface Schema {
  readonly type?: string;
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly additionalProperties?: Schema | boolean;
  readonly required?: readonly string[];
  readonly items?: Schema;
  readonly enum?: readonly unknown[];
  readonly anyOf?: readonly Schema[];
  readonly oneOf?: readonly Schema[];
  readonly not?: Schema;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly pattern?: string;
  readonly 'x-kubernetes-int-or-string'?: boolean;
  readonly 'x-kubernetes-preserve-unknown-fields'?: boolean;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeOk(type: string, v: unknown): boolean {
  switch (type) {
    case 'object':
      return isPlainObject(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'boolean':
      return typeof v === 'boolean';
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    default:
      throw new Error(`schema uses type ${type}, which this validator does not know`);
  }
}

/** Every violation of `schema` by `value`, each as `path: what` (empty: valid). */
export function validateSchema(schema: Schema, value: unknown, path = '$'): string[] {
  const errors: string[] = [];
  const matches = (s: Schema) => validateSchema(s, value, path).length === 0;
  if (schema['x-kubernetes-int-or-string'] === true) {
    if (!Number.isInteger(value) && typeof value !== 'string') {
      errors.push(`${path}: must be an integer or a string`);
    }
  } else if (schema.type !== undefined && !typeOk(schema.type, value)) {
    return [`${path}: must be of type ${schema.type}`];
  }
  if (schema.enum !== undefined && !schema.enum.includes(value)) {
    errors.push(`${path}: must be one of ${schema.enum.join(', ')}`);
  }
  if (schema.anyOf !== undefined && !schema['x-kubernetes-int-or-string']) {
    if (!schema.anyOf.some(matches)) errors.push(`${path}: matches none of anyOf`);
  }
  if (schema.oneOf !== undefined && schema.oneOf.filter(matches).length !== 1) {
    errors.push(`${path}: must match exactly one of oneOf`);
  }
  if (schema.not !== undefined && matches(schema.not)) errors.push(`${path}: matches "not"`);
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) {
      errors.push(`${path}: shorter than ${schema.minLength}`);
    }
    if (schema.maxLength !== undefined && value.length > schema.maxLength) {
      errors.push(`${path}: longer than ${schema.maxLength}`);
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) {
      errors.push(`${path}: does not match ${schema.pattern}`);
    }
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: < min`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: > max`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      errors.push(`${path}: fewer than ${schema.minItems} items`);
    }
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      errors.push(`${path}: more than ${schema.maxItems} items`);
    }
    const items = schema.items;
    if (items !== undefined) {
      value.forEach((item, i) => {
        errors.push(...validateSchema(items, item, `${path}[${i}]`));
      });
    }
  }
  if (isPlainObject(value)) {
    for (const name of schema.required ?? []) {
      if (!Object.hasOwn(value, name)) errors.push(`${path}: missing required field ${name}`);
    }
    const props = schema.properties;
    const extra = schema.additionalProperties;
    for (const [name, child] of Object.entries(value)) {
      const sub = props !== undefined && Object.hasOwn(props, name) ? props[name] : undefined;
      if (sub !== undefined) {
        errors.push(...validateSchema(sub, child, `${path}.${name}`));
      } else if (typeof extra === 'object') {
        errors.push(...validateSchema(extra, child, `${path}.${name}`));
      } else if (
        (props !== undefined || extra === false) &&
        extra !== true &&
        schema['x-kubernetes-preserve-unknown-fields'] !== true
      ) {
        errors.push(`${path}: unknown field ${name}`);
      }
    }
  }
  return errors;
}
