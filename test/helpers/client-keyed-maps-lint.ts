import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

/**
 * A lint that keeps DESIGN §12.2 true for the whole class, not one instance: an object with a
 * prototype must never be indexed by a string (or number) the program does not know in
 * advance, because a client-chosen `__proto__`, `constructor`, `toString` or `0` reads or
 * writes something other than an own entry. Flags, under the given files:
 *
 * - `obj[expr]` (read, write, `delete obj[expr]`) where `expr`'s type is `string` / `number`
 *   (not a literal or a closed union of literals) and `obj` is a plain object or record, i.e.
 *   not an array, tuple, string, typed array, Buffer, Map or Set, and not a `NullProtoRecord`
 *   (made only by `nullProtoRecord()` in src/shared/null-proto-record.ts);
 * - `expr in obj` with the same conditions (`in` sees inherited properties).
 *
 * A justified exception carries `// own-key: <why>` on the same line or the line before.
 */
export interface Offence {
  file: string;
  line: number;
  text: string;
  why: string;
}

const SAFE_CONTAINERS = new Set([
  'Map',
  'ReadonlyMap',
  'WeakMap',
  'Set',
  'ReadonlySet',
  'WeakSet',
  'Buffer',
  'ArrayBuffer',
  'SharedArrayBuffer',
  'DataView',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
  'String',
]);

/** Every .ts file under `dir`, recursively, sorted. */
export function tsFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...tsFilesUnder(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out.sort();
}

function compilerOptions(root: string): ts.CompilerOptions {
  const configPath = join(root, 'tsconfig.json');
  const read = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, root);
  return { ...parsed.options, noEmit: true };
}

/** Checks `files` (paths) as part of one program built with the project's tsconfig. */
export function checkFiles(root: string, files: readonly string[]): Offence[] {
  const program = ts.createProgram(files, compilerOptions(root));
  return checkProgram(program, root, new Set(files.map((f) => join(f))));
}

/** Checks one in-memory source text (for the lint's own tests). */
export function checkSource(text: string, fileName = 'snippet.ts'): Offence[] {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    strict: true,
    noUncheckedIndexedAccess: true,
    noEmit: true,
    types: [],
    lib: ['lib.es2023.d.ts'],
  };
  const host = ts.createCompilerHost(options);
  const original = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, onError, create) =>
    name === fileName
      ? ts.createSourceFile(name, text, version, true)
      : original(name, version, onError, create);
  const program = ts.createProgram([fileName], options, host);
  return checkProgram(program, '', new Set([fileName]));
}

function checkProgram(program: ts.Program, root: string, files: ReadonlySet<string>): Offence[] {
  const checker = program.getTypeChecker();
  const offences: Offence[] = [];
  for (const source of program.getSourceFiles()) {
    if (!files.has(join(source.fileName)) && !files.has(source.fileName)) continue;
    const lines = source.text.split('\n');
    const report = (node: ts.Node, why: string) => {
      const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
      if (isExcused(lines, line)) return;
      offences.push({
        file: root ? relative(root, source.fileName) : source.fileName,
        line: line + 1,
        text: node.getText(source).slice(0, 120),
        why,
      });
    };
    const visit = (node: ts.Node): void => {
      if (ts.isElementAccessExpression(node)) {
        const key = node.argumentExpression;
        const keyKind = openKeyKind(checker, checker.getTypeAtLocation(key));
        if (keyKind !== undefined) {
          const target = checker.getTypeAtLocation(node.expression);
          const plain = plainObjectPart(checker, target, keyKind);
          if (plain !== undefined) {
            report(node, `${keyKind} key indexes ${plain}`);
          }
        }
      } else if (
        ts.isBinaryExpression(node) &&
        node.operatorToken.kind === ts.SyntaxKind.InKeyword &&
        !ts.isPrivateIdentifier(node.left)
      ) {
        const keyKind = openKeyKind(checker, checker.getTypeAtLocation(node.left));
        if (keyKind !== undefined) {
          const plain = plainObjectPart(checker, checker.getTypeAtLocation(node.right), keyKind);
          if (plain !== undefined) report(node, `"in" with a ${keyKind} key on ${plain}`);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return offences;
}

/** `// own-key: <reason>` on the offending line or on the line before it. */
function isExcused(lines: readonly string[], line: number): boolean {
  const marker = /\/\/\s*own-key:\s*\S/;
  return marker.test(lines[line] ?? '') || /^\s*\/\/\s*own-key:\s*\S/.test(lines[line - 1] ?? '');
}

/** 'string' or 'number' when the key type is open (not literals only), else undefined. */
function openKeyKind(checker: ts.TypeChecker, type: ts.Type): 'string' | 'number' | undefined {
  let kind: 'string' | 'number' | undefined;
  for (const part of type.isUnion() ? type.types : [type]) {
    let t = part;
    if (t.flags & ts.TypeFlags.TypeParameter) {
      t = checker.getBaseConstraintOfType(t) ?? checker.getUnknownType();
    }
    const f = t.flags;
    if (f & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return 'string';
    if (f & (ts.TypeFlags.String | ts.TypeFlags.TemplateLiteral | ts.TypeFlags.StringMapping)) {
      return 'string';
    }
    if (f & ts.TypeFlags.Number) kind = 'number';
    if (t.isUnion()) {
      const inner = openKeyKind(checker, t);
      if (inner === 'string') return 'string';
      kind ??= inner;
    }
  }
  return kind;
}

/**
 * A description of the part of `type` that is a plain object (has a prototype, is indexed
 * as a record), or undefined when every part is a safe container or a NullProtoRecord.
 */
function plainObjectPart(
  checker: ts.TypeChecker,
  type: ts.Type,
  keyKind: 'string' | 'number',
): string | undefined {
  const nonNull = checker.getNonNullableType(type);
  const parts = nonNull.isUnion() ? nonNull.types : [nonNull];
  for (const part of parts) {
    const f = part.flags;
    if (f & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return checker.typeToString(part);
    if (f & (ts.TypeFlags.StringLike | ts.TypeFlags.NumberLike | ts.TypeFlags.Never)) continue;
    if (!(f & (ts.TypeFlags.Object | ts.TypeFlags.Intersection | ts.TypeFlags.TypeParameter))) {
      continue;
    }
    if (isNullProto(checker, part)) continue;
    if (checker.isArrayType(part) || checker.isTupleType(part)) continue;
    if (isArrayLikeBuiltin(checker, part)) continue;
    // A number on something with a number index signature and a length is array-like.
    if (keyKind === 'number' && checker.getPropertyOfType(part, 'length') !== undefined) {
      if (part.getNumberIndexType() !== undefined) continue;
    }
    return checker.typeToString(part);
  }
  return undefined;
}

function isNullProto(checker: ts.TypeChecker, type: ts.Type): boolean {
  const parts = type.isIntersection() ? type.types : [type];
  return parts.some((p) =>
    checker.getPropertiesOfType(p).some((s) => s.escapedName.toString().includes('nullProtoBrand')),
  );
}

function isArrayLikeBuiltin(checker: ts.TypeChecker, type: ts.Type): boolean {
  const parts = type.isIntersection() ? type.types : [type];
  return parts.some((p) => {
    const name = (p.aliasSymbol ?? p.getSymbol())?.getName();
    if (name !== undefined && SAFE_CONTAINERS.has(name)) return true;
    const base = checker.getApparentType(p).getSymbol()?.getName();
    return base !== undefined && SAFE_CONTAINERS.has(base);
  });
}
