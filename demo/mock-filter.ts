import { type FilterNode, parseFilterV2 } from '../src/policy/filter-v2.js';

/**
 * The demo Aggregator's `filter` support: it plays Kubecost, so it parses with keygate's
 * parseFilterV2 (which follows OpenCost's lexer and parser; a mock needs no second parser) but
 * evaluates with its own small evaluator below, and, like Kubecost, refuses fields the kind does
 * not have. Semantics follow OpenCost's filter ops: `:` equality (on a map without a key: the
 * key exists), `~:` contains, `<~:` prefix, `~>:` suffix; the `!` forms negate; several values
 * after a positive op are ORed, after a negated op ANDed ("none of them").
 */

export type FilterKind = 'allocation' | 'assets' | 'cloudCost';

/** What a field of one item reads as: a string, a list (services) or a map (labels). */
export type FieldValue = string | readonly string[] | ReadonlyMap<string, string> | undefined;
export type FieldReader = (field: string) => FieldValue;

const FIELDS: Record<FilterKind, { plain: readonly string[]; maps: readonly string[] }> = {
  allocation: {
    plain: [
      'cluster',
      'node',
      'namespace',
      'controllerName',
      'controllerKind',
      'container',
      'pod',
      'services',
      'department',
      'environment',
      'owner',
      'product',
      'team',
    ],
    maps: ['label', 'annotation'],
  },
  assets: {
    plain: [
      'name',
      'assetType',
      'category',
      'cluster',
      'project',
      'provider',
      'providerID',
      'account',
      'service',
    ],
    maps: ['label'],
  },
  cloudCost: {
    plain: ['accountID', 'category', 'invoiceEntityID', 'provider', 'providerID', 'service'],
    maps: ['label'],
  },
};

export class MockFilterError extends Error {}

/** Parses and checks a filter for a kind; undefined for the empty filter (everything). */
export function compileMockFilter(kind: FilterKind, text: string): FilterNode | undefined {
  let node: FilterNode;
  try {
    node = parseFilterV2(text);
  } catch (err) {
    throw new MockFilterError((err as Error).message);
  }
  if (node.type === 'void') return undefined;
  checkFields(kind, node);
  return node;
}

function checkFields(kind: FilterKind, node: FilterNode): void {
  if (node.type === 'and' || node.type === 'or') {
    for (const o of node.operands) checkFields(kind, o);
  } else if (node.type === 'comparison') {
    const { plain, maps } = FIELDS[kind];
    const ok =
      node.key === undefined
        ? plain.includes(node.field) || maps.includes(node.field)
        : maps.includes(node.field);
    if (!ok) throw new MockFilterError(`unknown ${kind} filter field "${node.field}"`);
  }
}

function test(op: string, actual: string, wanted: string): boolean {
  if (op.includes('<~')) return actual.startsWith(wanted);
  if (op.includes('~>')) return actual.endsWith(wanted);
  if (op.includes('~')) return actual.includes(wanted);
  return actual === wanted;
}

function matchOne(op: string, value: FieldValue, key: string | undefined, wanted: string): boolean {
  if (value instanceof Map) {
    if (key === undefined || key === '') {
      // A map without a key: the key exists (`:`, `~:`), or some key has the prefix/suffix.
      const keys = [...value.keys()];
      return op.includes('<~') || op.includes('~>')
        ? keys.some((k) => test(op, k, wanted))
        : value.has(wanted);
    }
    return test(op, value.get(key) ?? '', wanted);
  }
  if (Array.isArray(value)) return value.some((v) => test(op, v, wanted));
  return test(op, typeof value === 'string' ? value : '', wanted);
}

/** Evaluates a compiled filter against one item. */
export function matches(node: FilterNode | undefined, read: FieldReader): boolean {
  if (node === undefined) return true;
  switch (node.type) {
    case 'void':
      return true;
    case 'and':
      return node.operands.every((o) => matches(o, read));
    case 'or':
      return node.operands.some((o) => matches(o, read));
    case 'comparison': {
      const value = read(node.field);
      const negated = node.op.startsWith('!');
      const positive = negated ? node.op.slice(1) : node.op;
      const hits = node.values.map((v) => matchOne(positive, value, node.key, v));
      return negated ? hits.every((h) => !h) : hits.some((h) => h);
    }
  }
}
