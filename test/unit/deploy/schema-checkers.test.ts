import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Schema, validateSchema } from '../../helpers/crd-schema.js';
import { type ProtoTable, walkMessage } from '../../helpers/proto-fields.js';

/** The two checkers mesh-configs.test.ts relies on can fail, for each rule they claim. */

const schema: Schema = {
  type: 'object',
  required: ['spec'],
  properties: {
    spec: {
      type: 'object',
      properties: {
        name: { type: 'string', maxLength: 5, pattern: '^[a-z]+$' },
        port: {
          'x-kubernetes-int-or-string': true,
          anyOf: [{ type: 'integer' }, { type: 'string' }],
        },
        action: { type: 'string', enum: ['ALLOW', 'CUSTOM'] },
        list: { type: 'array', items: { type: 'integer', minimum: 0 }, maxItems: 2 },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
        free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
      },
      oneOf: [{ not: { anyOf: [{ required: ['name'] }] } }, { required: ['name'] }],
    },
  },
};

describe('validateSchema (CRD openAPIV3Schema subset)', () => {
  it('accepts a valid document', () => {
    const ok = {
      spec: {
        name: 'ab',
        port: 'http',
        action: 'CUSTOM',
        list: [1],
        labels: { a: 'b' },
        free: { x: { y: 1 } },
      },
    };
    expect(validateSchema(schema, ok)).toEqual([]);
  });

  it('rejects unknown fields, wrong types, missing required, enums, bounds, patterns', () => {
    expect(validateSchema(schema, { spec: { nmae: 'a' } })).toEqual(['$.spec: unknown field nmae']);
    expect(validateSchema(schema, { spec: {}, extra: 1 })).toEqual(['$: unknown field extra']);
    expect(validateSchema(schema, {})).toEqual(['$: missing required field spec']);
    expect(validateSchema(schema, { spec: { name: 1 } })).toEqual([
      '$.spec.name: must be of type string',
    ]);
    expect(validateSchema(schema, { spec: { port: true } }).join()).toMatch(/integer or a string/);
    expect(validateSchema(schema, { spec: { action: 'DENY' } }).join()).toMatch(/must be one of/);
    expect(validateSchema(schema, { spec: { list: [1, 2, 3] } }).join()).toMatch(/more than 2/);
    expect(validateSchema(schema, { spec: { list: [-1] } }).join()).toMatch(/< min/);
    expect(validateSchema(schema, { spec: { name: 'abcdef' } }).join()).toMatch(/longer than 5/);
    expect(validateSchema(schema, { spec: { name: 'A' } }).join()).toMatch(/does not match/);
    expect(validateSchema(schema, { spec: { labels: { a: 1 } } }).join()).toMatch(
      /labels\.a: must be of type string/,
    );
    expect(validateSchema(schema, { spec: [] })).toEqual(['$.spec: must be of type object']);
  });

  it('hostile field names are unknown fields, never prototype lookups', () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '0']) {
      const doc = JSON.parse(`{"spec":{"${name}":1}}`) as unknown;
      expect(validateSchema(schema, doc)).toEqual([`$.spec: unknown field ${name}`]);
    }
  });

  it('property: any field name the schema does not list is reported', () => {
    const known = new Set(Object.keys(schema.properties?.spec?.properties ?? {}));
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }).filter((n) => !known.has(n)),
        (name) => {
          const spec: Record<string, unknown> = {};
          Object.defineProperty(spec, name, { value: 1, enumerable: true });
          expect(validateSchema(schema, { spec })).toEqual([`$.spec: unknown field ${name}`]);
        },
      ),
    );
  });
});

const table: ProtoTable = {
  messages: {
    'x.Filter': {
      fields: { name: { type: 'string' }, typed_config: { type: 'google.protobuf.Any' } },
    },
    'x.Config': {
      fields: {
        path_prefix: { type: 'string' },
        fail_open: { type: 'bool' },
        timeout: { type: 'google.protobuf.Duration' },
        port: { type: 'uint32' },
        level: { type: 'x.Level', enum: true },
        headers: { type: 'string', repeated: true },
        extra: { type: 'string', map: true },
        old: { type: 'string', deprecated: true },
        grpc: { type: 'x.Other', oneof: 'service' },
        http: { type: 'x.Other', oneof: 'service' },
      },
    },
    'x.Other': { fields: {} },
  },
  enums: { 'x.Level': { values: ['LOW', 'HIGH'] } },
};
const extensions = new Map([['cfg', 'x.Config']]);
const walk = (
  config: Record<string, unknown>,
  type = 'type.googleapis.com/x.Config',
  names: 'proto' | 'json' = 'proto',
) =>
  walkMessage(
    table,
    'x.Filter',
    { name: 'cfg', typed_config: { '@type': type, ...config } },
    { names, extensions },
  );

describe('walkMessage (.proto field lists)', () => {
  it('accepts a valid document, in proto or JSON names', () => {
    const ok = {
      path_prefix: '/a',
      fail_open: false,
      timeout: '0.25s',
      port: 1,
      level: 'LOW',
      headers: ['a'],
      extra: { a: 'b' },
      http: {},
    };
    expect(walk(ok)).toEqual([]);
    const json = (doc: Record<string, unknown>) =>
      walkMessage(table, 'x.Config', doc, { names: 'json' });
    expect(json({ pathPrefix: '/a', failOpen: true })).toEqual([]);
    expect(json({ path_prefix: '/a' }).join()).toMatch(/unknown field path_prefix/);
  });

  it('rejects unknown, deprecated, wrongly typed fields, bad enums, two of a oneof, a wrong @type', () => {
    expect(walk({ fail_opne: true }).join()).toMatch(/unknown field fail_opne in x.Config/);
    expect(walk({ old: 'x' }).join()).toMatch(/deprecated field/);
    expect(walk({ fail_open: 'false' }).join()).toMatch(/must be a bool/);
    expect(walk({ port: -1 }).join()).toMatch(/must be a uint32/);
    expect(walk({ timeout: '5' }).join()).toMatch(/not a duration/);
    expect(walk({ level: 'MID' }).join()).toMatch(/must be one of/);
    expect(walk({ headers: 'a' }).join()).toMatch(/must be a list/);
    expect(walk({ grpc: {}, http: {} }).join()).toMatch(/oneof service already set/);
    expect(walk({}, 'type.googleapis.com/x.Other').join()).toMatch(
      /@type x.Other is not the expected x.Config/,
    );
    expect(walk({}, 'x.Config').join()).toMatch(/needs "@type/);
    expect(
      walkMessage(
        table,
        'x.Filter',
        { name: 'nope', typed_config: { '@type': 'type.googleapis.com/x.Config' } },
        { names: 'proto', extensions },
      ).join(),
    ).toMatch(/no extension name/);
  });

  it('hostile field names are unknown fields, never prototype lookups', () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'valueOf']) {
      const doc = JSON.parse(`{"${name}":1}`) as Record<string, unknown>;
      expect(walkMessage(table, 'x.Config', doc, { names: 'proto' })).toEqual([
        `$: unknown field ${name} in x.Config`,
      ]);
      expect(walkMessage(table, 'x.Config', doc, { names: 'json' })).toEqual([
        `$: unknown field ${name} in x.Config`,
      ]);
    }
    expect(walkMessage(table, 'constructor', {}, { names: 'proto' }).join()).toMatch(
      /not in the field lists/,
    );
  });
});
