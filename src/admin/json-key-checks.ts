/**
 * Checks on the member names of a parsed JSON body, before any schema sees it. Both walk
 * iteratively: a 16 KiB body can nest thousands of levels deep, which recursion would not survive.
 */

/**
 * Names that mean something to JavaScript objects. No admin body has such a field, and a value
 * under one of them must never get near an object that could take it as a prototype, so they
 * are refused by name, at any depth, whatever a schema library would do with them.
 */
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

/** The path of the first member, at any depth, named like an Object property; else undefined. */
export function forbiddenKeyPath(value: unknown): PropertyKey[] | undefined {
  // Each entry links to its parent instead of copying the path, so a deeply nested body costs
  // linear work; the path is built only for the member that is reported.
  interface Item {
    value: unknown;
    key: PropertyKey | undefined;
    parent: Item | undefined;
  }
  const pathOf = (item: Item | undefined, last: PropertyKey): PropertyKey[] => {
    const path: PropertyKey[] = [last];
    for (let at = item; at?.key !== undefined; at = at.parent) path.unshift(at.key);
    return path;
  };
  const todo: Item[] = [{ value, key: undefined, parent: undefined }];
  for (let item = todo.pop(); item !== undefined; item = todo.pop()) {
    const v = item.value;
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) todo.push({ value: v[i], key: i, parent: item });
      continue;
    }
    // JSON.parse makes "__proto__" an own data property, so own keys see all of them.
    for (const [key, member] of Object.entries(v)) {
      if (FORBIDDEN.has(key)) return pathOf(item, key);
      todo.push({ value: member, key, parent: item });
    }
  }
  return undefined;
}

interface Frame {
  /** Member names seen so far; null for an array. */
  names: Set<string> | null;
  /** The current member name, or the current array index. */
  at: string | number;
  expectName: boolean;
}

/**
 * The path of the first member name repeated within one object, in text that JSON.parse has
 * already accepted; else undefined. RFC 8259 leaves duplicates to the parser (first wins,
 * last wins, error): a body two parsers read differently is refused rather than guessed at.
 */
export function duplicateKeyPath(text: string): PropertyKey[] | undefined {
  const stack: Frame[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let end = i + 1;
      while (text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c /* \ */ ? 2 : 1;
      const top = stack.at(-1);
      if (top?.names && top.expectName) {
        const name = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.names.has(name)) return [...stack.slice(0, -1).map((f) => f.at), name];
        top.names.add(name);
        top.at = name;
        top.expectName = false;
      }
      i = end + 1;
      continue;
    }
    if (c === 0x7b /* { */) stack.push({ names: new Set(), at: '', expectName: true });
    else if (c === 0x5b /* [ */) stack.push({ names: null, at: 0, expectName: false });
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x2c /* , */) {
      const top = stack.at(-1);
      if (top?.names) top.expectName = true;
      else if (top) top.at = (top.at as number) + 1;
    }
    i++;
  }
  return undefined;
}
