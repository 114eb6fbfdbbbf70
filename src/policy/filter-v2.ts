/**
 * Kubecost's filter language v2, parsed the way the Aggregator parses it, and the one function
 * that ANDs an account's filter into a client's query string.
 *
 * Sources (read, not copied): OpenCost's lexer and parser, which Kubecost's Aggregator uses,
 *   opencost/opencost core/pkg/filter/ast/lexer.go  @ 111dee88067c056e30c45807e08dcf03bd4cc5bd
 *   opencost/opencost core/pkg/filter/ast/parser.go @ 4d08c58a39ced597c776eb28fb43612ec9581727
 * and the query handling around it:
 *   opencost/opencost core/pkg/util/httputil/httputil.go @ 7379d4aca5393f3e391460abdbb93994545dd402
 *     (QueryParams.Get = url.Values.Get: exact, case-sensitive name, FIRST value wins)
 *   handlers: `filterString := qp.Get("filter", ""); if filterString != "" { Parse(...) }`, a parse
 *     error answers 400 ("Invalid 'filter' parameter"); the assets handler also folds a `cluster`
 *     parameter into the filter text with fmt %q (buildAssetFilterString).
 *   Go net/url.ParseQuery (Go >= 1.17): pairs split on "&" only; a pair containing a raw ";" is
 *     dropped (with an error), so is a pair whose name or value has a malformed escape; "+" in a
 *     name or value decodes to a space; a pair without "=" has the value "".
 *
 * What the real lexer does, and so what this one does:
 * - tokens `: , + | ( )`, the operators `!: ~: !~: <~: !<~: ~>: !~>:`, whitespace ' ' \t \n \r
 *   skipped outside strings and brackets (no other whitespace: \f, \v, U+00A0 are errors);
 * - a string runs from `"` to the NEXT `"`: no escapes, a backslash is an ordinary character;
 * - keyed access runs from `[` to the first `]`, anything in between (quotes, parens) is the key;
 * - identifiers are runs of letters, digits, `-`, `_` (the real lexer accepts Unicode letters;
 *   every field name is ASCII and an identifier that is not a field name is a parse error there,
 *   so accepting only ASCII here refuses exactly what Kubecost refuses).
 * What the real parser does that this one deliberately does NOT follow:
 * - at the top level it silently ignores tokens after the first complete element when they do
 *   not start with `+` or `|` (`namespace:"a" cluster:"b"` filters on namespace only); here that
 *   is an error. Such text never reaches Kubecost from keygate, so the only effect is a 400 for
 *   a filter Kubecost would have half-ignored. Notably a client that writes `a+b` unencoded
 *   sends Go `a b` ("+" is a space in a query), which Kubecost would read as just `a`.
 * - it knows each kind's field names; this parser accepts any identifier as a field (it does not
 *   know which kind the route serves). An unknown field reaches Kubecost, which refuses the whole
 *   filter with a 400: fail closed, nothing unfiltered is served.
 * Every text this parser accepts, Kubecost parses to the same tree (the strict grammar below is
 * a subset of what its error-recovering parser accepts without error). That is what makes
 * `(<account>)+(<client>)` safe: the client's text is balanced, so it cannot close the group.
 */

export type FilterOp = ':' | '!:' | '~:' | '!~:' | '<~:' | '!<~:' | '~>:' | '!~>:';

export type FilterNode =
  /** The empty filter (Kubecost's VoidOp): matches everything. Only ever the whole filter. */
  | { readonly type: 'void' }
  | { readonly type: 'and'; readonly operands: readonly FilterNode[] }
  | { readonly type: 'or'; readonly operands: readonly FilterNode[] }
  | {
      readonly type: 'comparison';
      /** `namespace`, `label`, … (not checked against a kind's field list, see above). */
      readonly field: string;
      /** The text between `[` and `]` (`label[app]` → `app`); undefined without brackets. */
      readonly key: string | undefined;
      readonly op: FilterOp;
      /** One or more; `:` ORs them, the negated operators AND them (as Kubecost does). */
      readonly values: readonly string[];
    };

/** Longest filter text parseFilterV2 reads (characters); longer is an error, not a slow parse. */
export const MAX_FILTER_TEXT = 16_384;
/** Deepest parenthesis nesting parseFilterV2 reads; deeper is an error, never a stack overflow. */
export const MAX_FILTER_DEPTH = 64;
/** Limits on an account's filter (write time) and on a client's filter (request time). Their
 * combination `(<account>)+(<client>)` stays within the two limits above. */
export const MAX_ACCOUNT_FILTER_TEXT = 4096;
export const MAX_CLIENT_FILTER_TEXT = 8192;
export const MAX_ACCOUNT_FILTER_DEPTH = 16;
export const MAX_CLIENT_FILTER_DEPTH = 32;

export class FilterSyntaxError extends Error {
  override readonly name = 'FilterSyntaxError';
  constructor(
    /** Offset (UTF-16 code units) in the filter text where the problem was found. */
    readonly position: number,
    readonly problem: string,
  ) {
    super(`filter syntax error at offset ${position}: ${problem}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

type TokenKind = 'op' | ',' | '+' | '|' | '(' | ')' | 'str' | 'ident' | 'key' | 'eof';
interface Token {
  readonly kind: TokenKind;
  /** Operator text, string contents (without quotes), identifier, key (without brackets). */
  readonly text: string;
  readonly pos: number;
}

const IDENT = /[A-Za-z0-9_-]/;
const IDENT_RUN = /[A-Za-z0-9_-]+/y;
// Longest match first: `!<~:` before `!:` is irrelevant (different second char), but `!~>:`
// must win over `!~:` only when the `>` is there, which the explicit list makes obvious.
const OPERATORS: readonly FilterOp[] = ['!<~:', '!~>:', '!~:', '<~:', '~>:', '!:', '~:', ':'];

/** Describes a character for an error message without echoing arbitrary client text. */
function describeChar(c: string): string {
  const code = c.codePointAt(0) ?? 0;
  if (code >= 0x21 && code <= 0x7e) return `'${c}'`;
  return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

function lex(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    const pos = i;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if (c === ',' || c === '+' || c === '|' || c === '(' || c === ')') {
      tokens.push({ kind: c, text: c, pos });
      i++;
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end === -1) throw new FilterSyntaxError(pos, 'unterminated string');
      tokens.push({ kind: 'str', text: text.slice(i + 1, end), pos });
      i = end + 1;
    } else if (c === '[') {
      const end = text.indexOf(']', i + 1);
      if (end === -1) throw new FilterSyntaxError(pos, "unterminated '[' (keyed access)");
      tokens.push({ kind: 'key', text: text.slice(i + 1, end), pos });
      i = end + 1;
    } else if (c === ':' || c === '!' || c === '~' || c === '<') {
      const op = OPERATORS.find((o) => text.startsWith(o, i));
      if (op === undefined) throw new FilterSyntaxError(pos, `unexpected ${describeChar(c)}`);
      tokens.push({ kind: 'op', text: op, pos });
      i += op.length;
    } else if (IDENT.test(c)) {
      IDENT_RUN.lastIndex = i;
      const m = IDENT_RUN.exec(text);
      const word = m?.[0] ?? c;
      tokens.push({ kind: 'ident', text: word, pos });
      i += word.length;
    } else {
      throw new FilterSyntaxError(pos, `unexpected character ${describeChar(c)}`);
    }
  }
  tokens.push({ kind: 'eof', text: '', pos: text.length });
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// Parser: the strict grammar
//   filter     ::= element ( '+' element )* | element ( '|' element )*
//   element    ::= '(' filter ')' | comparison
//   comparison ::= ident [ key ] op str ( ',' str )*
// A single-element group is its element (Kubecost's `(a)` is `a`).
// ---------------------------------------------------------------------------------------------

class Parser {
  private at = 0;
  constructor(
    private readonly tokens: readonly Token[],
    private readonly maxDepth: number,
  ) {}

  private peek(): Token {
    // The token list always ends with eof and `at` never passes it.
    return this.tokens[this.at] as Token;
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.at++;
    return t;
  }

  private fail(t: Token, what: string): never {
    const found =
      t.kind === 'eof'
        ? 'end of filter'
        : t.kind === 'str'
          ? 'a string'
          : t.kind === 'key'
            ? "'['"
            : t.kind === 'ident'
              ? 'a name'
              : `'${t.text}'`;
    throw new FilterSyntaxError(t.pos, `expected ${what}, found ${found}`);
  }

  parseAll(): FilterNode {
    if (this.peek().kind === 'eof') return { type: 'void' };
    const node = this.filter(0);
    const t = this.peek();
    if (t.kind !== 'eof') {
      this.fail(t, t.kind === ')' ? "end of filter (')' without '(')" : "'+', '|' or end");
    }
    return node;
  }

  private filter(depth: number): FilterNode {
    const first = this.element(depth);
    const opTok = this.peek();
    if (opTok.kind !== '+' && opTok.kind !== '|') return first;
    const operands: FilterNode[] = [first];
    while (this.peek().kind === opTok.kind) {
      this.next();
      operands.push(this.element(depth));
    }
    const after = this.peek();
    if (after.kind === '+' || after.kind === '|') {
      throw new FilterSyntaxError(
        after.pos,
        `'${after.text}' after '${opTok.text}' in one group: use parentheses to mix AND and OR`,
      );
    }
    return { type: opTok.kind === '+' ? 'and' : 'or', operands };
  }

  private element(depth: number): FilterNode {
    const t = this.peek();
    if (t.kind === '(') {
      if (depth + 1 > this.maxDepth) {
        throw new FilterSyntaxError(t.pos, `parentheses nested deeper than ${this.maxDepth}`);
      }
      this.next();
      const inner = this.filter(depth + 1);
      const close = this.peek();
      if (close.kind !== ')') this.fail(close, "')'");
      this.next();
      return inner;
    }
    return this.comparison();
  }

  private comparison(): FilterNode {
    const fieldTok = this.next();
    if (fieldTok.kind !== 'ident') this.fail(fieldTok, "a field name or '('");
    let key: string | undefined;
    if (this.peek().kind === 'key') key = this.next().text;
    const opTok = this.next();
    if (opTok.kind !== 'op') this.fail(opTok, "an operator like ':' or '!:'");
    const values: string[] = [];
    for (;;) {
      const v = this.next();
      if (v.kind !== 'str') this.fail(v, 'a double-quoted value');
      values.push(v.text);
      if (this.peek().kind !== ',') break;
      this.next();
    }
    return { type: 'comparison', field: fieldTok.text, key, op: opTok.text as FilterOp, values };
  }
}

function parseWithLimits(text: string, maxLength: number, maxDepth: number): FilterNode {
  if (text.length > maxLength) {
    throw new FilterSyntaxError(maxLength, `filter longer than ${maxLength} characters`);
  }
  // A lone UTF-16 surrogate has no UTF-8 form: it could not be sent, nor mean anything upstream.
  const lone = /\p{Cs}/u.exec(text);
  if (lone !== null) throw new FilterSyntaxError(lone.index, 'lone UTF-16 surrogate');
  return new Parser(lex(text), maxDepth).parseAll();
}

/** Parses a v2 filter exactly as Kubecost does; throws FilterSyntaxError (message says where). */
export function parseFilterV2(text: string): FilterNode {
  return parseWithLimits(text, MAX_FILTER_TEXT, MAX_FILTER_DEPTH);
}

/**
 * Canonical text of a parsed filter. Round-trips exactly: a value cannot contain `"` and a key
 * cannot contain `]` (the lexer ends them there), so writing them back between their delimiters
 * reproduces the same tokens. Groups are always parenthesised, so nesting is explicit.
 */
export function formatFilterV2(node: FilterNode): string {
  switch (node.type) {
    case 'void':
      return '';
    case 'comparison':
      return `${node.field}${node.key === undefined ? '' : `[${node.key}]`}${node.op}${node.values
        .map((v) => `"${v}"`)
        .join(',')}`;
    case 'and':
    case 'or':
      return node.operands
        .map((o) => (o.type === 'comparison' ? formatFilterV2(o) : `(${formatFilterV2(o)})`))
        .join(node.type === 'and' ? '+' : '|');
  }
}

// Control characters in an account's filter would end up in the CLI's table output and logs;
// Kubecost accepts them inside quotes, but no real namespace, cluster or label carries one.
const CONTROL = /\p{Cc}/u;

/** For write-time validation of an account's filter (admin API/CLI/apply): null when valid. */
export function filterProblem(text: string): string | null {
  if (typeof text !== 'string') return 'a filter must be a string';
  let node: FilterNode;
  try {
    node = parseWithLimits(text, MAX_ACCOUNT_FILTER_TEXT, MAX_ACCOUNT_FILTER_DEPTH);
  } catch (err) {
    if (err instanceof FilterSyntaxError) return err.message;
    throw err;
  }
  // An empty filter is Kubecost's "everything": as an account's filter it would scope nothing,
  // which is what leaving the kind out says explicitly.
  if (node.type === 'void') return 'an empty filter restricts nothing: remove the kind instead';
  const control = CONTROL.exec(text);
  if (control !== null) return `control character at offset ${control.index}`;
  return null;
}

// ---------------------------------------------------------------------------------------------
// Query strings, read as Go's url.ParseQuery reads them
// ---------------------------------------------------------------------------------------------

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Go's url.QueryUnescape into bytes: "%XX" (either case) is a byte, "+" is a space, a "%" not
 * followed by two hex digits is an error (Go drops such a pair). A raw character is its UTF-8
 * bytes, which is how it leaves keygate.
 */
function goQueryUnescape(raw: string): Uint8Array | null {
  if (!raw.includes('%') && !raw.includes('+')) return Buffer.from(raw, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
      out.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (c === 0x2b /* + */) {
      out.push(0x20);
    } else if (c < 0x80) {
      out.push(c);
    } else {
      const cp = raw.codePointAt(i) ?? c;
      for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) out.push(b);
      if (cp > 0xffff) i++;
    }
  }
  return Uint8Array.from(out);
}

/** ASCII lower case only: Go's EqualFold-style Unicode folding cannot turn anything else into "filter". */
function asciiLower(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b >= 0x41 && b <= 0x5a ? b + 32 : b);
  return s;
}

/** Percent-encodes so that Go's QueryUnescape gives back exactly `text` ("+" → %2B, " " → %20). */
function encodeQueryValue(text: string): string {
  // encodeURIComponent leaves only A-Z a-z 0-9 - _ . ! ~ * ' ( ) raw: none is special to Go's
  // query decoding ("+", "%", "&", ";", "#", "=" and space are all escaped).
  return encodeURIComponent(text);
}

type Refusal = { ok: false; reason: 'syntax' | 'duplicate' | 'legacy'; detail: string };

/**
 * The query string (raw bytes after '?', without '?') to forward for an account whose filter for
 * this kind is `accountFilter` (already validated at write time). Every other parameter is kept
 * byte for byte, in order; the `filter` parameter becomes `(<account>)+(<client>)` (or just the
 * account's when the client sent none), percent-encoded as needed. Refusals:
 * {ok:false, reason:'syntax'|'duplicate'|'legacy'} → 400 invalid_filter.
 *
 * Decisions (each fails closed; sources in the header comment):
 * - Pairs are split on "&" only, as Go >= 1.17 does. A pair is a filter parameter when its name
 *   DECODES to `filter` (`%66ilter`, `filte%72` count: Go decodes names, so leaving them would
 *   smuggle an unscoped filter past keygate).
 * - Any other name that decodes to something starting with "filter" in any ASCII case
 *   (`filterNamespaces`, `filterClusters`, `Filter`, `FILTER`, `filter_x`) → 'legacy': v1
 *   parameters filter by themselves when `filter` is absent, and a case-insensitive reader
 *   would take `Filter` for the filter; no real client needs them with a team-scoped key.
 * - Two filter parameters → 'duplicate' (Go keeps both and Kubecost reads the first).
 * - A pair with a raw ";" is dropped by Go >= 1.17 but split by older Go and other servers: if
 *   any ";"-separated piece of it names a filter (or `cluster`, below) → 'syntax'; otherwise the
 *   pair is not ours and is kept byte for byte.
 * - A name with a malformed escape ("%zz", a lone "%") → 'syntax': Go drops the pair, but a
 *   lenient decoder might read it, and keygate cannot tell what it names.
 * - The filter value: a malformed escape → 'syntax' (Go would drop the pair: Kubecost would see
 *   no client filter, the client did not get what it asked for); "+" is a space (what Kubecost
 *   sees: a literal "+" is a filter AND only when sent as %2B); bytes that are not UTF-8 →
 *   'syntax'; then it must parse (strictly, see the header) within MAX_CLIENT_FILTER_TEXT and
 *   MAX_CLIENT_FILTER_DEPTH. An empty (or all-whitespace) client filter is Kubecost's "no
 *   filter", so only the account's is forwarded.
 * - `cluster`: the assets handler splices it into the filter text with Go's %q, whose `\"`
 *   escape the filter lexer does not know, so a `"` in it could break out of the filter. A
 *   `cluster` value (any ASCII case) with `"`, `\`, a control or a non-ASCII byte → 'syntax'.
 *   Plain values only narrow the result further and are kept byte for byte.
 * - The forwarded filter is rebuilt from the parsed trees (formatFilterV2), re-parsed and checked
 *   to be a top-level AND whose first operand is the account's filter before it is returned.
 */
export function scopeQuery(
  rawQuery: string,
  accountFilter: string,
): { ok: true; query: string } | Refusal {
  const account = parseWithLimits(accountFilter, MAX_ACCOUNT_FILTER_TEXT, MAX_ACCOUNT_FILTER_DEPTH);
  // The caller validated the account's filter at write time (filterProblem); an empty one here
  // is a bug that must not turn into "forward unfiltered".
  if (account.type === 'void') throw new Error('scopeQuery: the account filter is empty');
  // A raw '#' is not allowed in a request target's query (RFC 3986 §3.4, RFC 9112 §3.2). Go
  // keeps it as a query byte, but any hop that reads it as a fragment (WHATWG URL parsers,
  // Envoy with http_reject_path_with_fragment off) cuts the query there, and with it the
  // account's filter appended after it: the team would be served unfiltered. `%23` is the
  // encoding every client sends for a '#' it means.
  if (rawQuery.includes('#')) return refuse('syntax', "a raw '#' in the query (send it as %23)");

  const pairs = rawQuery === '' ? [] : rawQuery.split('&');
  let filterIndex = -1;
  let clientText = '';
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i] as string;
    if (pair === '') continue;
    if (pair.includes(';')) {
      for (const piece of pair.split(';')) {
        const name = nameOf(piece);
        if (name === null || name.startsWith('filter') || name === 'cluster') {
          return refuse('syntax', "a ';' in a parameter that carries a filter");
        }
      }
      continue;
    }
    const eq = pair.indexOf('=');
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1);
    const nameBytes = goQueryUnescape(rawName);
    if (nameBytes === null) return refuse('syntax', 'malformed percent-encoding in a name');
    const exact = Buffer.from(nameBytes).toString('latin1');
    const name = asciiLower(nameBytes);
    if (exact === 'filter') {
      if (filterIndex !== -1) return refuse('duplicate', 'more than one filter parameter');
      const valueBytes = goQueryUnescape(rawValue);
      if (valueBytes === null) return refuse('syntax', 'malformed percent-encoding in filter');
      try {
        clientText = UTF8.decode(valueBytes);
      } catch {
        return refuse('syntax', 'filter is not UTF-8');
      }
      filterIndex = i;
    } else if (name.startsWith('filter')) {
      return refuse('legacy', `parameter "${printable(exact)}" is not allowed for this key`);
    } else if (name === 'cluster') {
      const valueBytes = goQueryUnescape(rawValue);
      if (
        valueBytes === null ||
        valueBytes.some((b) => b < 0x20 || b > 0x7e || b === 0x22 || b === 0x5c)
      ) {
        return refuse('syntax', 'cluster parameter with quotes, backslashes or control characters');
      }
    }
  }

  let scoped: string;
  let client: FilterNode = { type: 'void' };
  if (filterIndex !== -1) {
    try {
      client = parseWithLimits(clientText, MAX_CLIENT_FILTER_TEXT, MAX_CLIENT_FILTER_DEPTH);
    } catch (err) {
      if (err instanceof FilterSyntaxError) return refuse('syntax', err.message);
      throw err;
    }
  }
  const accountText = formatFilterV2(account);
  if (client.type === 'void') {
    scoped = accountText;
  } else {
    scoped = `(${accountText})+(${formatFilterV2(client)})`;
    // Belt and braces: what leaves keygate must be AND(account, client) for any parser that
    // follows the grammar; if this ever fails it is a bug here, never something to forward.
    const check = parseFilterV2(scoped);
    if (
      check.type !== 'and' ||
      check.operands.length !== 2 ||
      formatFilterV2(check.operands[0] as FilterNode) !== accountText
    ) {
      throw new Error('scopeQuery: the combined filter does not keep the account filter');
    }
  }
  const param = `filter=${encodeQueryValue(scoped)}`;
  if (filterIndex === -1) {
    return { ok: true, query: rawQuery === '' ? param : `${rawQuery}&${param}` };
  }
  const out = pairs.slice();
  out[filterIndex] = param;
  return { ok: true, query: out.join('&') };
}

function refuse(reason: Refusal['reason'], detail: string): Refusal {
  return { ok: false, reason, detail };
}

/** The ASCII-lower-cased decoded name of a pair, or null when it does not decode. */
function nameOf(pair: string): string | null {
  const eq = pair.indexOf('=');
  const bytes = goQueryUnescape(eq === -1 ? pair : pair.slice(0, eq));
  return bytes === null ? null : asciiLower(bytes);
}

/** A parameter name for an error detail: printable ASCII only, at most 40 characters. */
function printable(name: string): string {
  return name.replace(/[^\x20-\x7e]/g, '?').slice(0, 40);
}
