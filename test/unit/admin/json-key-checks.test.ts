import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { duplicateKeyPath, forbiddenKeyPath } from '../../../src/admin/json-key-checks.js';
import { readJsonBody } from '../../../src/admin/read-json-body.js';
import { KeygateError } from '../../../src/errors.js';

/** A JSON value whose objects are entry lists, so it can hold duplicate member names. */
type Tree = null | number | string | boolean | Tree[] | { entries: Array<[string, Tree]> };

const NAMES = ['a', 'b', 'description', '__proto__', 'constructor', 'prototype', 'é', '"', '\\'];
const name = fc.oneof(fc.constantFrom(...NAMES), fc.string({ maxLength: 4 }));
const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.integer(),
    fc.string({ maxLength: 6 }),
    fc.boolean(),
    fc.array(tie('tree'), { maxLength: 4 }),
    fc.array(fc.tuple(name, tie('tree')), { maxLength: 5 }).map((entries) => ({ entries }) as Tree),
  ),
}));

/** Renders with optional whitespace between tokens, keeping duplicates exactly as written. */
function render(t: Tree, ws: string): string {
  if (t === null || typeof t !== 'object') return JSON.stringify(t);
  if (Array.isArray(t)) return `[${ws}${t.map((c) => render(c, ws)).join(`${ws},${ws}`)}${ws}]`;
  const members = t.entries.map(([k, v]) => `${JSON.stringify(k)}${ws}:${ws}${render(v, ws)}`);
  return `{${ws}${members.join(`${ws},${ws}`)}${ws}}`;
}

/** The oracle: some object anywhere repeats a member name. */
function hasDuplicate(t: Tree): boolean {
  if (t === null || typeof t !== 'object') return false;
  if (Array.isArray(t)) return t.some(hasDuplicate);
  const names = t.entries.map(([k]) => k);
  return new Set(names).size !== names.length || t.entries.some(([, v]) => hasDuplicate(v));
}

/** The oracle on what JSON.parse keeps: for a repeated name, the last member wins. */
function hasForbidden(t: Tree): boolean {
  if (t === null || typeof t !== 'object') return false;
  if (Array.isArray(t)) return t.some(hasForbidden);
  const kept = new Map(t.entries);
  return [...kept].some(
    ([k, v]) => ['__proto__', 'constructor', 'prototype'].includes(k) || hasForbidden(v),
  );
}

function fakeRequest(body: string): IncomingMessage {
  const stream = Readable.from([Buffer.from(body, 'utf8')]);
  return Object.assign(stream, {
    headers: {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    },
  }) as unknown as IncomingMessage;
}

async function messageOf(body: string, schema: z.ZodType): Promise<string> {
  return readJsonBody(fakeRequest(body), schema).then(
    () => 'ok',
    (e: unknown) => (e instanceof KeygateError ? `${e.status} ${e.message}` : `thrown ${e}`),
  );
}

describe('member-name checks on JSON bodies', () => {
  it('property: duplicateKeyPath finds a duplicate iff one exists, in any valid JSON text', () => {
    fc.assert(
      fc.property(tree, fc.constantFrom('', ' ', '\n\t '), (t, ws) => {
        const text = render(t, ws);
        JSON.parse(text); // the precondition: only text JSON.parse accepted is scanned
        expect(duplicateKeyPath(text) !== undefined).toBe(hasDuplicate(t));
      }),
      { numRuns: 2000 },
    );
  });

  it('property: forbiddenKeyPath finds __proto__/constructor/prototype at any depth', () => {
    fc.assert(
      fc.property(tree, (t) => {
        expect(forbiddenKeyPath(JSON.parse(render(t, ''))) !== undefined).toBe(hasForbidden(t));
      }),
      { numRuns: 2000 },
    );
  });

  it('paths name where the member is', () => {
    expect(duplicateKeyPath('{"a":[1,{"b":1,"c":{"x":1,"x":2}}]}')).toEqual(['a', 1, 'c', 'x']);
    expect(duplicateKeyPath('{"a\\"":1,"a\\u0022":2}')).toEqual(['a"']);
    expect(forbiddenKeyPath(JSON.parse('{"a":[0,{"__proto__":{}}]}'))).toEqual([
      'a',
      1,
      '__proto__',
    ]);
  });

  it('a body 8000 levels deep is checked without overflowing the stack', () => {
    const deep = `${'['.repeat(8000)}{"__proto__":1}${']'.repeat(8000)}`;
    expect(forbiddenKeyPath(JSON.parse(deep))?.at(-1)).toBe('__proto__');
    expect(duplicateKeyPath(deep)).toBeUndefined();
  });
});

describe('readJsonBody refuses prototype-named and duplicate members', () => {
  const schema = z.strictObject({
    description: z.string(),
    scopes: z.array(z.string()).optional(),
  });

  it.each([
    ['{"description":"d","__proto__":{"admin":true}}', /^400 __proto__: unknown field$/],
    ['{"__proto__":{"description":"d"}}', /^400 __proto__: unknown field$/],
    ['{"description":"d","constructor":{"prototype":{"x":1}}}', /^400 constructor: unknown field$/],
    ['{"description":"d","prototype":1}', /^400 prototype: unknown field$/],
    [
      '{"description":"d","scopes":[{"__proto__":"read"}]}',
      /^400 scopes\[0\].__proto__: unknown field$/,
    ],
    ['{"description":"d","__proto__":1,"__proto__":2}', /^400 __proto__: unknown field$/],
    ['{"description":"a","description":"b"}', /^400 description: duplicate field$/],
    ['{"description":"a","scopes":[],"scopes":["read"]}', /^400 scopes: duplicate field$/],
  ])('%s → %s', async (body, message) => {
    expect(await messageOf(body, schema)).toMatch(message);
  });

  it('never changes a prototype, whatever the body says', async () => {
    for (const body of [
      '{"__proto__":{"polluted":true}}',
      '{"constructor":{"prototype":{"polluted":true}}}',
      '{"description":"d","scopes":[],"__proto__":{"polluted":true}}',
    ]) {
      await messageOf(body, schema);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.prototype).not.toHaveProperty('polluted');
    }
  });

  it('an ordinary body still passes', async () => {
    expect(await messageOf('{"description":"d","scopes":["read"]}', schema)).toBe('ok');
  });
});
