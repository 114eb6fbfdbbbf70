/**
 * Checks a YAML/JSON document against field lists extracted from .proto files (vendored as JSON
 * with their source commit): every key must be a field of the message at that place, of the
 * right shape, not deprecated, at most one per oneof; enums must name a value; an Any
 * (`typed_config`) must name the message its extension `name` expects and is walked as that
 * message. How Envoy's and Istio's configs, which cannot run in CI, are checked.
 */
export interface ProtoField {
  readonly type: string;
  readonly repeated?: boolean;
  readonly map?: boolean;
  readonly deprecated?: boolean;
  readonly enum?: boolean;
  readonly oneof?: string;
}
export interface ProtoTable {
  readonly messages: Readonly<
    Record<string, { readonly fields: Readonly<Record<string, ProtoField>> }>
  >;
  readonly enums: Readonly<Record<string, { readonly values: readonly string[] }>>;
}
export interface WalkOptions {
  /** `json`: keys are lowerCamelCase JSON names (Istio's YAML); `proto`: snake_case (Envoy's). */
  readonly names: 'proto' | 'json';
  /** Extension name → the message its typed_config must hold. */
  readonly extensions?: ReadonlyMap<string, string>;
  /** Filled with every message type visited (to prune the vendored table). */
  readonly visited?: Set<string>;
}

const INTEGER = new Set([
  'int32',
  'int64',
  'uint32',
  'uint64',
  'sint32',
  'sint64',
  'fixed32',
  'fixed64',
]);
const WRAPPERS: ReadonlyMap<string, string> = new Map([
  ['google.protobuf.UInt32Value', 'uint32'],
  ['google.protobuf.UInt64Value', 'uint64'],
  ['google.protobuf.Int32Value', 'int32'],
  ['google.protobuf.Int64Value', 'int64'],
  ['google.protobuf.BoolValue', 'bool'],
  ['google.protobuf.StringValue', 'string'],
  ['google.protobuf.DoubleValue', 'double'],
]);
const ANY_PREFIX = 'type.googleapis.com/';

const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every violation, each as `path: what` (empty: the document fits the field lists). */
export function walkMessage(
  table: ProtoTable,
  type: string,
  value: unknown,
  options: WalkOptions,
  path = '$',
): string[] {
  const errors: string[] = [];
  const scalar = (t: string, v: unknown, p: string) => {
    const ok =
      t === 'string' || t === 'bytes'
        ? typeof v === 'string'
        : t === 'bool'
          ? typeof v === 'boolean'
          : INTEGER.has(t)
            ? (Number.isInteger(v) && (!t.startsWith('u') || (v as number) >= 0)) ||
              (typeof v === 'string' && /^\d+$/.test(v))
            : t === 'double' || t === 'float'
              ? typeof v === 'number'
              : false;
    if (!ok) errors.push(`${p}: must be a ${t}`);
  };
  const one = (t: string, v: unknown, p: string, fieldIsEnum: boolean, any?: string) => {
    const wrapped = WRAPPERS.get(t);
    if (wrapped !== undefined) return scalar(wrapped, v, p);
    if (t === 'google.protobuf.Duration') {
      if (typeof v !== 'string' || !/^\d+(\.\d{1,9})?s$/.test(v))
        errors.push(`${p}: not a duration`);
      return;
    }
    if (t === 'google.protobuf.Struct' || t === 'google.protobuf.Value') return;
    if (t === 'google.protobuf.Any') {
      if (
        !isPlainObject(v) ||
        typeof v['@type'] !== 'string' ||
        !v['@type'].startsWith(ANY_PREFIX)
      ) {
        errors.push(`${p}: an Any needs "@type: ${ANY_PREFIX}<message>"`);
        return;
      }
      const named = v['@type'].slice(ANY_PREFIX.length);
      if (any === undefined) errors.push(`${p}: no extension name says what @type to expect`);
      else if (named !== any) errors.push(`${p}: @type ${named} is not the expected ${any}`);
      const { '@type': _, ...rest } = v;
      errors.push(...walkMessage(table, named, rest, options, p));
      return;
    }
    if (fieldIsEnum) {
      const values = Object.hasOwn(table.enums, t) ? table.enums[t]?.values : undefined;
      if (values === undefined) errors.push(`${p}: enum ${t} is not in the field lists`);
      else if (typeof v !== 'string' || !values.includes(v)) {
        errors.push(`${p}: must be one of ${t}: ${values.join(', ')}`);
      }
      return;
    }
    if (/^[a-z0-9]+$/.test(t)) return scalar(t, v, p);
    errors.push(...walkMessage(table, t, v, options, p));
  };

  const message = Object.hasOwn(table.messages, type) ? table.messages[type] : undefined;
  if (message === undefined) return [`${path}: message ${type} is not in the field lists`];
  options.visited?.add(type);
  if (!isPlainObject(value)) return [`${path}: must be a ${type} object`];
  const byName = new Map<string, [string, ProtoField]>();
  for (const [name, field] of Object.entries(message.fields)) {
    byName.set(options.names === 'json' ? camel(name) : name, [name, field]);
  }
  const oneofs = new Map<string, string>();
  for (const [key, v] of Object.entries(value)) {
    const p = `${path}.${key}`;
    const entry = byName.get(key);
    if (entry === undefined) {
      errors.push(`${path}: unknown field ${key} in ${type}`);
      continue;
    }
    const [, field] = entry;
    if (field.deprecated === true) errors.push(`${p}: deprecated field of ${type}`);
    if (field.oneof !== undefined) {
      const other = oneofs.get(field.oneof);
      if (other !== undefined) errors.push(`${p}: oneof ${field.oneof} already set by ${other}`);
      oneofs.set(field.oneof, key);
    }
    // The Any next to an extension `name` must hold the message that name expects.
    const any =
      key === 'typed_config' && typeof value.name === 'string'
        ? options.extensions?.get(value.name)
        : undefined;
    const isEnum = field.enum === true;
    if (field.map === true) {
      if (!isPlainObject(v)) errors.push(`${p}: must be a map`);
      else for (const [k, mv] of Object.entries(v)) one(field.type, mv, `${p}.${k}`, isEnum);
    } else if (field.repeated === true) {
      if (!Array.isArray(v)) errors.push(`${p}: must be a list`);
      else {
        v.forEach((item, i) => {
          one(field.type, item, `${p}[${i}]`, isEnum);
        });
      }
    } else {
      one(field.type, v, p, isEnum, any);
    }
  }
  return errors;
}
