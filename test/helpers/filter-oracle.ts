/**
 * Independent oracles for the filter tests. Written from the written rules, NOT importing
 * src/policy/filter-v2.ts, and built differently (a character-level recursive descent with no
 * token list; a byte decoder that follows Go's url.ParseQuery source line by line), so a bug
 * in one is unlikely to be repeated in the other.
 */

/** A filter tree: `and`/`or` groups, `cmp` = [field, key or null, op, values]. */
export type Tree =
  | { and: Tree[] }
  | { or: Tree[] }
  | { cmp: [string, string | null, string, string[]] };

const OPS = ['!<~:', '!~>:', '!~:', '<~:', '~>:', '!:', '~:', ':'];
const WS = ' \t\n\r';

/**
 * Kubecost v2 grammar: `+` AND, `|` OR, one operator kind per group, `( )` groups, comparisons
 * `<field>[<key>]?<op>"<v>"(,"<v>")*`; values end at the first `"` (no escapes), keys at the
 * first `]`; whitespace ' ', \t, \n, \r between tokens; identifiers [A-Za-z0-9_-]+.
 * Returns 'empty' for a filter with no tokens, null when the text does not parse.
 */
export function oracleParse(text: string, maxDepth = 1000): Tree | 'empty' | null {
  // Text with no UTF-8 form (lone surrogates) cannot be sent: refused.
  if (Buffer.from(text, 'utf8').toString('utf8') !== text) return null;
  let i = 0;
  const ws = () => {
    while (i < text.length && WS.includes(text.charAt(i))) i++;
  };
  class No extends Error {}
  const no = (): never => {
    throw new No();
  };
  const expr = (depth: number): Tree => {
    if (depth > maxDepth) no();
    const first = elem(depth);
    ws();
    const op = text.charAt(i);
    if (op !== '+' && op !== '|') return first;
    const items = [first];
    for (;;) {
      ws();
      if (text.charAt(i) !== op) break;
      i++;
      items.push(elem(depth));
    }
    ws();
    if (text.charAt(i) === '+' || text.charAt(i) === '|') no();
    return op === '+' ? { and: items } : { or: items };
  };
  const elem = (depth: number): Tree => {
    ws();
    if (text.charAt(i) === '(') {
      i++;
      const e = expr(depth + 1);
      ws();
      if (text.charAt(i) !== ')') no();
      i++;
      return e;
    }
    const start = i;
    while (i < text.length && /[A-Za-z0-9_-]/.test(text.charAt(i))) i++;
    if (i === start) no();
    const field = text.slice(start, i);
    ws();
    let key: string | null = null;
    if (text.charAt(i) === '[') {
      const end = text.indexOf(']', i + 1);
      if (end < 0) no();
      key = text.slice(i + 1, end);
      i = end + 1;
      ws();
    }
    const op = OPS.find((o) => text.startsWith(o, i)) ?? no();
    i += op.length;
    const values: string[] = [];
    for (;;) {
      ws();
      if (text.charAt(i) !== '"') no();
      const end = text.indexOf('"', i + 1);
      if (end < 0) no();
      values.push(text.slice(i + 1, end));
      i = end + 1;
      ws();
      if (text.charAt(i) !== ',') break;
      i++;
    }
    return { cmp: [field, key, op, values] };
  };
  try {
    ws();
    if (i === text.length) return 'empty';
    const t = expr(0);
    ws();
    return i === text.length ? t : null;
  } catch (err) {
    if (err instanceof No) return null;
    throw err;
  }
}

/**
 * Go's url.ParseQuery (Go >= 1.17, net/url parseQuery): for each "&"-separated piece, skip it
 * if it contains ";" (error "invalid semicolon separator"), skip it if empty, cut at the first
 * "=", unescape name and value with QueryUnescape ("%XX" a byte, "+" a space, any other "%" an
 * error that drops the pair), append. Returns the pairs in order, names and values as bytes
 * turned into strings (latin1 for names, UTF-8 or null when not UTF-8 for values).
 */
export function goParseQuery(query: string): Array<{ name: string; value: string | null }> {
  const out: Array<{ name: string; value: string | null }> = [];
  for (const piece of query.split('&')) {
    if (piece.includes(';') || piece === '') continue;
    const eq = piece.indexOf('=');
    const name = queryUnescape(eq < 0 ? piece : piece.slice(0, eq));
    const value = queryUnescape(eq < 0 ? '' : piece.slice(eq + 1));
    if (name === null || value === null) continue;
    let text: string | null;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(value);
    } catch {
      text = null;
    }
    out.push({ name: Buffer.from(name).toString('latin1'), value: text });
  }
  return out;
}

function queryUnescape(s: string): Buffer | null {
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i] as number;
    if (b === 0x25) {
      const h = raw.subarray(i + 1, i + 3).toString('latin1');
      if (h.length !== 2 || !/^[0-9a-fA-F]{2}$/.test(h)) return null;
      bytes.push(Number.parseInt(h, 16));
      i += 2;
    } else bytes.push(b === 0x2b ? 0x20 : b);
  }
  return Buffer.from(bytes);
}
