import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkFiles, checkSource, tsFilesUnder } from '../../helpers/client-keyed-maps-lint.js';

// DESIGN §12.2: every map keyed by client-chosen strings is a null-prototype object, a Map or
// a flat array. This lint keeps the whole of src/ to it (see the helper for the rule).

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

describe('client-keyed maps lint', () => {
  it('src/ indexes no object that has a prototype with an open string or number key', () => {
    const offences = checkFiles(ROOT, tsFilesUnder(`${ROOT}src`));
    const report = offences.map((o) => `${o.file}:${o.line}: ${o.why}: ${o.text}`);
    expect(
      report,
      'use a Map, a flat array or nullProtoRecord() from src/shared/null-proto-record.ts; ' +
        'or, where the key is provably the object’s own, ownEntry() or a "// own-key: <why>" comment',
    ).toEqual([]);
  }, 60_000);

  const BRAND = `
    declare const nullProtoBrand: unique symbol;
    type NullProtoRecord<T> = { [key: string]: T } & { readonly [nullProtoBrand]: true };
    declare function nullProtoRecord<T>(): NullProtoRecord<T>;
  `;
  const lines = (src: string) => checkSource(BRAND + src).map((o) => o.text);

  it('flags a write, a read, a delete and "in" on a plain record keyed by a string', () => {
    expect(
      lines(`
        const out: Record<string, string> = {};
        export function add(name: string, v: string) { out[name] = v; }
        export function get(name: string) { return out[name]; }
        export function drop(name: string) { delete out[name]; }
        export function has(name: string) { return name in out; }
      `),
    ).toEqual(['out[name]', 'out[name]', 'out[name]', 'name in out']);
  });

  it('flags objects with no declared index, any, numbers on records and open generic keys', () => {
    expect(
      lines(`
        export function a(o: { x: number }, k: string) { return (o as Record<string, number>)[k]; }
        export function b(o: any, k: string) { return o[k]; }
        export function c(o: Record<number, string>, n: number) { return o[n]; }
        export function d<K extends string>(o: Record<string, number>, k: K) { return o[k]; }
        export function e(o: Record<string, number>, k: \`x-\${string}\`) { return o[k]; }
        export class F { [k: string]: unknown; get(k: string) { return this[k]; } }
      `),
    ).toEqual(['(o as Record<string, number>)[k]', 'o[k]', 'o[n]', 'o[k]', 'o[k]', 'this[k]']);
  });

  it('passes arrays, tuples, strings, typed arrays, Maps, literal and closed keys, and NullProtoRecord', () => {
    expect(
      lines(`
        export function f(arr: string[], t: [string, number], s: string, u: Uint8Array, i: number) {
          return [arr[i], t[i], s[i], u[i]];
        }
        export function g(name: string) {
          const r = nullProtoRecord<string>();
          r[name] = 'v';
          delete r[name];
          return name in r ? r[name] : undefined;
        }
        type Kind = 'a' | 'b';
        const table: Record<Kind, number> = { a: 1, b: 2 };
        export function h(k: Kind) { return table[k] + table['a']; }
        export function j<K extends keyof typeof table>(k: K) { return table[k]; }
      `),
    ).toEqual([]);
  });

  it('accepts an "// own-key: <why>" on the same or the previous line, not an empty one', () => {
    expect(
      lines(`
        const o: Record<string, number> = {};
        export function a(k: string) { return Object.hasOwn(o, k) ? o[k] : 0; } // own-key: hasOwn
        export function b(k: string) {
          // own-key: checked with Object.hasOwn just above
          return o[k];
        }
        export function c(k: string) { return o[k]; } // own-key:
        export function d(k: string) {
          // own-key: two lines above does not count

          return o[k];
        }
      `),
    ).toEqual(['o[k]', 'o[k]']);
  });

  it('reports file and line', () => {
    const [offence] = checkSource(
      'const out: Record<string, string> = {};\nexport const f = (n: string) => {\n  out[n] = "v";\n};\n',
      'x.ts',
    );
    expect(offence).toMatchObject({ file: 'x.ts', line: 3, text: 'out[n]' });
  });
});
