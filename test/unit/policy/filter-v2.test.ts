import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type FilterNode,
  FilterSyntaxError,
  filterProblem,
  formatFilterV2,
  MAX_FILTER_DEPTH,
  MAX_FILTER_TEXT,
  parseFilterV2,
  scopeQuery,
} from '../../../src/policy/filter-v2.js';
import { goParseQuery, oracleParse, type Tree } from '../../helpers/filter-oracle.js';

/** The parser's tree in the oracle's shape, to compare the two. */
function toTree(node: FilterNode): Tree | 'empty' {
  switch (node.type) {
    case 'void':
      return 'empty';
    case 'comparison':
      return { cmp: [node.field, node.key ?? null, node.op, [...node.values]] };
    case 'and':
      return { and: node.operands.map((o) => toTree(o) as Tree) };
    case 'or':
      return { or: node.operands.map((o) => toTree(o) as Tree) };
  }
}

function parses(text: string): boolean {
  try {
    parseFilterV2(text);
    return true;
  } catch (err) {
    expect(err).toBeInstanceOf(FilterSyntaxError);
    return false;
  }
}

describe('parseFilterV2: table', () => {
  const valid: Array<[string, Tree | 'empty']> = [
    ['', 'empty'],
    ['  \t\r\n ', 'empty'],
    ['namespace:"kubecost"', { cmp: ['namespace', null, ':', ['kubecost']] }],
    ['cluster!:"cluster-one"', { cmp: ['cluster', null, '!:', ['cluster-one']] }],
    ['namespace:"a","b"', { cmp: ['namespace', null, ':', ['a', 'b']] }],
    ['label[app]:"cost"', { cmp: ['label', 'app', ':', ['cost']] }],
    ['label:"app"', { cmp: ['label', null, ':', ['app']] }],
    ['label[]:"x"', { cmp: ['label', '', ':', ['x']] }],
    // A key ends at the first "]": quotes and parentheses inside are part of it.
    ['label[a")|(b]:"x"', { cmp: ['label', 'a")|(b', ':', ['x']] }],
    // A value ends at the first '"': no escapes, a backslash is an ordinary character.
    ['namespace:"a\\"', { cmp: ['namespace', null, ':', ['a\\']] }],
    ['namespace:")|(cluster:"', { cmp: ['namespace', null, ':', [')|(cluster:']] }],
    ['namespace:""', { cmp: ['namespace', null, ':', ['']] }],
    ['  namespace  :  "a" ,  "b"  ', { cmp: ['namespace', null, ':', ['a', 'b']] }],
    ['label [app] :"x"', { cmp: ['label', 'app', ':', ['x']] }],
    ...(['~:', '!~:', '<~:', '!<~:', '~>:', '!~>:'] as const).map((op): [string, Tree] => [
      `pod${op}"x"`,
      { cmp: ['pod', null, op, ['x']] },
    ]),
    [
      'namespace:"a"+cluster:"b"',
      {
        and: [{ cmp: ['namespace', null, ':', ['a']] }, { cmp: ['cluster', null, ':', ['b']] }],
      },
    ],
    [
      'namespace:"a"|namespace:"b"|namespace:"c"',
      {
        or: ['a', 'b', 'c'].map((v): Tree => ({ cmp: ['namespace', null, ':', [v]] })),
      },
    ],
    [
      '(namespace:"a"|namespace:"b")+cluster:"c"',
      {
        and: [
          {
            or: [
              { cmp: ['namespace', null, ':', ['a']] },
              { cmp: ['namespace', null, ':', ['b']] },
            ],
          },
          { cmp: ['cluster', null, ':', ['c']] },
        ],
      },
    ],
    ['((namespace:"a"))', { cmp: ['namespace', null, ':', ['a']] }],
    ['namespace:"é😀"', { cmp: ['namespace', null, ':', ['é😀']] }],
  ];
  it.each(valid)('parses %j', (text, tree) => {
    expect(toTree(parseFilterV2(text))).toEqual(tree);
    expect(oracleParse(text)).toEqual(tree);
  });

  const invalid: string[] = [
    'namespace', // no operator
    'namespace:', // no value
    'namespace:kubecost', // value not quoted
    "namespace:'a'",
    'namespace:"a', // unterminated string
    'namespace:"a"+', // trailing operator
    '+namespace:"a"',
    'namespace:"a"+cluster:"b"|pod:"c"', // mixed operators in one group
    'namespace:"a"|cluster:"b"+pod:"c"',
    '(namespace:"a"', // unbalanced
    'namespace:"a")',
    'namespace:"a")|(cluster:"b"',
    '()',
    '( )',
    'namespace:"a" cluster:"b"', // Kubecost ignores the second: refused here
    'namespace:"a"(cluster:"b")',
    'namespace:"a",', // dangling comma
    'namespace:,"a"',
    'label[app:"x"', // unterminated key
    'namespace]:"a"',
    'namespace=="a"',
    'namespace!"a"',
    'namespace~"a"',
    'namespace<:"a"',
    'namespace~>"a"',
    'namespace!<~"a"',
    'namespace>:"a"',
    'namespace:"a"&cluster:"b"',
    'namespace:"a";cluster:"b"',
    'namespace\u000c:"a"', // form feed is not whitespace to the lexer
    'namespace\u00a0:"a"',
    'namespacé:"a"', // non-ASCII outside quotes
    'name\\space:"a"',
    '"a":namespace',
    'namespace:"a"\ud800',
    'namespace:"\ud800"',
  ];
  it.each(invalid)('refuses %j', (text) => {
    expect(() => parseFilterV2(text)).toThrow(FilterSyntaxError);
    expect(oracleParse(text)).toBeNull();
  });

  it('says where the problem is', () => {
    const err = (() => {
      try {
        parseFilterV2('namespace:"a"+cluster:"b"|pod:"c"');
      } catch (e) {
        return e as FilterSyntaxError;
      }
      return undefined;
    })();
    expect(err?.position).toBe(25);
    expect(err?.message).toMatch(/offset 25/);
  });

  it('bounds length and nesting with errors, never a stack overflow', () => {
    expect(() => parseFilterV2(`namespace:"${'a'.repeat(MAX_FILTER_TEXT)}"`)).toThrow(
      /longer than/,
    );
    const deep = (n: number) => `${'('.repeat(n)}namespace:"a"${')'.repeat(n)}`;
    expect(toTree(parseFilterV2(deep(MAX_FILTER_DEPTH)))).toEqual({
      cmp: ['namespace', null, ':', ['a']],
    });
    expect(() => parseFilterV2(deep(MAX_FILTER_DEPTH + 1))).toThrow(/nested deeper/);
    // Far beyond the limit (and beyond what recursion could survive): still a clean error.
    expect(() => parseFilterV2('('.repeat(MAX_FILTER_TEXT))).toThrow(FilterSyntaxError);
    expect(() => parseFilterV2('('.repeat(100_000))).toThrow(FilterSyntaxError);
  });
});

// ----------------------------------------------------------------------------------------------
// Generators
// ----------------------------------------------------------------------------------------------

const FIELDS = ['namespace', 'cluster', 'node', 'pod', 'controllerKind', 'label', 'annotation'];
const OPS = [':', '!:', '~:', '!~:', '<~:', '!<~:', '~>:', '!~>:'];
const ws = fc.constantFrom('', '', '', ' ', '  ', '\t', '\n', '\r\n');
/** Value characters: anything but '"', with the hostile ones over-represented. */
const valueText = fc.oneof(
  fc.string({ maxLength: 8 }).map((s) => s.replaceAll('"', '')),
  fc
    .array(
      fc.constantFrom(
        'a',
        '-',
        ')',
        '(',
        '|',
        '+',
        '\\',
        ']',
        '[',
        ',',
        ':',
        ' ',
        '%',
        '&',
        ';',
        '#',
        '=',
      ),
      {
        maxLength: 8,
      },
    )
    .map((a) => a.join('')),
  fc.constantFrom('team-a', 'kube-system', ')|(namespace:', 'é', '😀', '\\'),
);
const keyText = fc.oneof(
  fc.constantFrom('app', 'team', 'a")|(b', '', 'x"y'),
  fc.string({ maxLength: 6 }).map((s) => s.replaceAll(']', '')),
);
const comparison = fc
  .tuple(
    fc.constantFrom(...FIELDS),
    fc.option(keyText, { nil: undefined }),
    fc.constantFrom(...OPS),
    fc.array(valueText, { minLength: 1, maxLength: 3 }),
    ws,
    ws,
  )
  .map(
    ([f, k, op, vs, w1, w2]) =>
      `${w1}${f}${k === undefined ? '' : `[${k}]`}${w2}${op}${w2}${vs.map((v) => `"${v}"`).join(`${w1},`)}${w1}`,
  );
/** Filters valid by the grammar. */
const validFilter: fc.Arbitrary<string> = fc.letrec<{ f: string }>((tie) => ({
  f: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    comparison,
    fc
      .tuple(
        fc.constantFrom('+', '|'),
        fc.array(
          fc.oneof(
            comparison,
            tie('f').map((f) => `(${f})`),
          ),
          {
            minLength: 2,
            maxLength: 3,
          },
        ),
      )
      .map(([op, parts]) => parts.join(op)),
    tie('f').map((f) => `(${f})`),
  ),
})).f;
const HOSTILE_PIECES = [
  ')',
  '(',
  ')|(',
  ')+(',
  '|',
  '+',
  '"',
  '\\',
  '\\"',
  ',',
  '[',
  ']',
  ':',
  '!',
  '~',
  '<',
  '>',
  ' ',
  '%',
  ';',
  '&',
  'namespace:"x"',
  'namespace',
  '""',
  '\u000c',
];
/** Valid filters with hostile pieces spliced in, pure token soup, and the empty filter. */
const hostileFilter: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(
      validFilter,
      fc.array(fc.tuple(fc.nat(), fc.constantFrom(...HOSTILE_PIECES)), {
        minLength: 1,
        maxLength: 3,
      }),
    )
    .map(([f, inserts]) =>
      inserts.reduce((s, [at, p]) => {
        const i = at % (s.length + 1);
        return s.slice(0, i) + p + s.slice(i);
      }, f),
    ),
  fc.array(fc.constantFrom(...HOSTILE_PIECES), { maxLength: 8 }).map((a) => a.join('')),
  fc.constantFrom('', ' ', ')|(', 'namespace:"a"|(namespace:"b"', 'namespace:"a\\")|("b"'),
);
const anyFilter = fc.oneof(validFilter, hostileFilter);

const ACCOUNT_FILTERS = [
  'namespace:"team-a"',
  'namespace:"team-a","team-b"',
  'namespace:"team-a"|namespace:"team-b"',
  'namespace:"team-a"+cluster!:"prod"',
  '(label[team]:"a")|(namespace<~:"a-")',
  'cluster:"c1"+(namespace:"x"|label[app]:"y")',
];

/** encodeURIComponent over UTF-8 bytes; a lone surrogate (from splicing) becomes U+FFFD. */
function pct(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_.!~*'()]/.test(c)
      ? c
      : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Encodes a filter value the ways clients do, including wrongly. */
function encodings(text: string): fc.Arbitrary<string> {
  return fc.constantFrom(
    pct(text),
    // "+" left raw: Go reads it as a space (what Kubecost would see).
    pct(text).replaceAll('%2B', '+'),
    // Lower-case hex, and "%20" for spaces as "+".
    pct(text).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    pct(text).replaceAll('%20', '+'),
    // Minimal: only what would break the query structure.
    text.replace(/[%&#+;= ]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`),
    // Raw, unencoded.
    text,
  );
}
const FILTER_NAMES = [
  'filter',
  'filter',
  'filter',
  '%66ilter',
  'filte%72',
  'FILTER',
  'Filter',
  'fil%74er',
];
const OTHER_PARAMS = [
  'window=1d',
  'aggregate=namespace',
  'accumulate=true',
  'a+b=c%20d',
  'x',
  '',
  '=v',
  'shareLabels=env%3Astaging',
  'filterNamespaces=kube-system',
  'filterClusters=c',
  'filterclusters=c',
  '%66ilterNamespaces=x',
  'x=1;filter=namespace:%22b%22',
  'x=1;y=2',
  'cluster=cluster-one',
  'cluster=a%22%29%7C%28b',
  'cluster=a\\b',
  'q=%zz',
  '%zz=1',
  'idle=false&',
  'names=a,b',
  'é=ü',
];

interface GeneratedQuery {
  raw: string;
  params: string[];
}
const query: fc.Arbitrary<GeneratedQuery> = fc
  .tuple(
    fc.array(fc.constantFrom(...OTHER_PARAMS), { maxLength: 4 }),
    fc.array(
      fc.tuple(
        fc.constantFrom(...FILTER_NAMES),
        anyFilter.chain((f) => encodings(f)),
        fc.boolean(),
      ),
      { maxLength: 2 },
    ),
    fc.nat(),
  )
  .map(([others, filters, seed]) => {
    const params = [...others];
    filters.forEach(([name, value, bare], n) => {
      const at = (seed + n * 7) % (params.length + 1);
      params.splice(at, 0, bare && value === '' ? name : `${name}=${value}`);
    });
    return { raw: params.join('&'), params };
  });

// ----------------------------------------------------------------------------------------------
// Properties
// ----------------------------------------------------------------------------------------------

describe('parseFilterV2 agrees with an independent parser written from the grammar', () => {
  it('on valid and hostile filters: same verdict, same tree, and the text round-trips', () => {
    fc.assert(
      fc.property(anyFilter, (text) => {
        const oracle = oracleParse(text);
        if (oracle === null) {
          expect(parses(text)).toBe(false);
          return;
        }
        const node = parseFilterV2(text);
        expect(toTree(node)).toEqual(oracle);
        expect(toTree(parseFilterV2(formatFilterV2(node)))).toEqual(oracle);
      }),
      { numRuns: 3000 },
    );
  });

  it('accepts every filter generated from the grammar', () => {
    fc.assert(
      fc.property(validFilter, (text) => {
        expect(oracleParse(text)).not.toBeNull();
        expect(parses(text)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('scopeQuery', () => {
  it.each([
    'window=1d#',
    'window=1d#frag',
    '#&window=1d',
    'window=1d#&filter=cluster%3A%22c1%22',
    'filter=cluster%3A%22c1%22#x',
    'filter=cluster:"c1#"',
  ])(
    "refuses a raw '#' anywhere in the query (%s): a hop that reads it as a fragment would cut the account's filter off",
    (raw) => {
      const result = scopeQuery(raw, 'namespace:"team-a"');
      expect(result).toMatchObject({ ok: false, reason: 'syntax' });
    },
  );

  it("an encoded '#' (%23) is an ordinary byte: kept, and the account's filter ANDed in", () => {
    expect(scopeQuery('names=a%23b&filter=cluster:%22c%23%22', 'namespace:"team-a"')).toEqual({
      ok: true,
      query: 'names=a%23b&filter=(namespace%3A%22team-a%22)%2B(cluster%3A%22c%23%22)',
    });
  });

  it('refuses, or forwards exactly one filter whose top-level AND holds the account filter', () => {
    const tally = { forwarded: 0, refused: 0, withClient: 0 };
    fc.assert(
      fc.property(query, fc.constantFrom(...ACCOUNT_FILTERS), ({ raw }, account) => {
        const result = scopeQuery(raw, account);
        if (!result.ok) {
          tally.refused++;
          expect(['syntax', 'duplicate', 'legacy']).toContain(result.reason);
          return;
        }
        tally.forwarded++;
        // A hop that cuts the query at a raw '#' (a fragment to WHATWG URL parsers, to Envoy
        // with http_reject_path_with_fragment off) must not cut the account's filter away.
        expect(result.query).not.toContain('#');
        // What Go (and so Kubecost) sees.
        const seen = goParseQuery(result.query);
        const filters = seen.filter((p) => p.name === 'filter');
        expect(filters).toHaveLength(1);
        // No other parameter that filters by itself survives (v1, other case, ";"-smuggled).
        for (const p of seen) {
          if (p.name !== 'filter') expect(p.name.toLowerCase().startsWith('filter')).toBe(false);
        }
        for (const piece of result.query.split(/[&;]/)) {
          const name = decodeURIComponentSafe(piece.split('=')[0] ?? '');
          if (name !== null && name !== 'filter') {
            expect(name.toLowerCase().startsWith('filter')).toBe(false);
          }
        }
        const text = filters[0]?.value;
        expect(typeof text).toBe('string');
        const tree = oracleParse(text as string);
        const accountTree = oracleParse(account);
        // The client's own filter, as Go would have decoded it from the original query.
        const client = goParseQuery(raw).filter((p) => p.name === 'filter');
        expect(client.length).toBeLessThanOrEqual(1);
        const clientTree = client[0]?.value == null ? 'empty' : oracleParse(client[0].value);
        if (clientTree === 'empty') {
          expect(tree).toEqual(accountTree);
        } else {
          tally.withClient++;
          expect(clientTree).not.toBeNull();
          expect(tree).toEqual({ and: [accountTree, clientTree] });
        }
        // Every other parameter is byte-identical and in order.
        const isOurs = (p: string) => p.startsWith('filter=');
        const kept = result.query.split('&').filter((p) => !isOurs(p));
        const before = (raw === '' ? [] : raw.split('&')).filter((p) => !isFilterName(p));
        expect(kept).toEqual(before);
        expect(result.query.split('&').filter(isOurs)).toHaveLength(1);
      }),
      { numRuns: 4000 },
    );
    // The generator must exercise both outcomes, and the combination itself.
    expect(tally.forwarded).toBeGreaterThan(200);
    expect(tally.refused).toBeGreaterThan(200);
    expect(tally.withClient).toBeGreaterThan(100);
  });

  it('never refuses a valid client filter sent with a proper encoding', () => {
    fc.assert(
      fc.property(
        validFilter,
        fc.constantFrom(...ACCOUNT_FILTERS),
        fc.constantFrom('filter', '%66ilter', 'fil%74er'),
        (text, account, name) => {
          const result = scopeQuery(`window=7d&${name}=${encodeURIComponent(text)}&x=1`, account);
          expect(result.ok).toBe(true);
          if (!result.ok) return;
          const pairs = result.query.split('&');
          expect(pairs[0]).toBe('window=7d');
          expect(pairs[2]).toBe('x=1');
          const value = goParseQuery(result.query).find((p) => p.name === 'filter')?.value;
          expect(oracleParse(value as string)).toEqual({
            and: [oracleParse(account), oracleParse(text)],
          });
        },
      ),
      { numRuns: 1000 },
    );
  });

  const A = 'namespace:"team-a"';
  const scoped = (client: string) => `filter=${encodeURIComponent(`(${A})+(${client})`)}`;
  const table: Array<[string, string, string]> = [
    [
      'no filter: appended',
      'window=1d&aggregate=namespace',
      `window=1d&aggregate=namespace&filter=${encodeURIComponent(A)}`,
    ],
    ['empty query', '', `filter=${encodeURIComponent(A)}`],
    [
      'empty client filter: the account alone',
      'filter=&window=1d',
      `filter=${encodeURIComponent(A)}&window=1d`,
    ],
    ['bare filter name', 'window=1d&filter', `window=1d&filter=${encodeURIComponent(A)}`],
    ['whitespace client filter', 'filter=+%20', `filter=${encodeURIComponent(A)}`],
    [
      'in place',
      'window=1d&filter=cluster%3A%22c1%22&x=2',
      `window=1d&${scoped('cluster:"c1"')}&x=2`,
    ],
    ['%2B is AND', 'filter=cluster:%22a%22%2Bpod:%22b%22', scoped('cluster:"a"+pod:"b"')],
    ['"+" is a space to Go', 'filter=pod:%22a+b%22', scoped('pod:"a b"')],
    ['encoded name', '%66ilter=cluster:%22c%22', scoped('cluster:"c"')],
    ['other bytes kept', 'a+b=c%2x&=&&x', `a+b=c%2x&=&&x&filter=${encodeURIComponent(A)}`],
    ['";" pair without a filter kept', 'x=1;y=2', `x=1;y=2&filter=${encodeURIComponent(A)}`],
  ];
  it.each(table)('%s', (_name, raw, expected) => {
    expect(scopeQuery(raw, A)).toEqual({ ok: true, query: expected });
  });

  const refusals: Array<[string, 'syntax' | 'duplicate' | 'legacy']> = [
    ['filter=namespace:%22b%22)|(namespace:%22c%22', 'syntax'],
    ['filter=namespace:%22b%22%7Cnamespace:%22c%22%2Bpod:%22d%22', 'syntax'],
    ['filter=namespace:%22b', 'syntax'],
    ['filter=namespace:%22b%22+cluster:%22c%22', 'syntax'], // Go: a space, Kubecost would drop half
    ['filter=%zz', 'syntax'],
    ['filter=%ff', 'syntax'], // not UTF-8
    ['filter=namespace:%22a%22&filter=namespace:%22b%22', 'duplicate'],
    ['filter=&filter=', 'duplicate'],
    ['filter=namespace:%22a%22&%66ilter=namespace:%22b%22', 'duplicate'],
    ['filterNamespaces=kube-system', 'legacy'],
    ['filterClusters=c', 'legacy'],
    ['%66ilterClusters=c', 'legacy'],
    ['Filter=namespace:%22b%22', 'legacy'],
    ['FILTER=x', 'legacy'],
    ['filter_x=1', 'legacy'],
    ['x=1;filter=namespace:%22b%22', 'syntax'],
    ['filter=namespace:%22b%22;x=1', 'syntax'],
    ['x=1;%66ilter=y', 'syntax'],
    ['x=1;cluster=c', 'syntax'],
    ['%zz=1', 'syntax'],
    ['cluster=a%22)%7C(namespace:%22b', 'syntax'],
    ['cluster=a\\b', 'syntax'],
    ['Cluster=a%0a', 'syntax'],
    [`filter=${'('.repeat(40)}pod:%22a%22${')'.repeat(40)}`, 'syntax'],
    [`filter=pod:%22${'a'.repeat(9000)}%22`, 'syntax'],
  ];
  it.each(refusals)('refuses %j (%s)', (raw, reason) => {
    const result = scopeQuery(raw, A);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toBe(reason);
  });

  it('never forwards when the account filter is empty (a bug upstream of it, not a client error)', () => {
    expect(() => scopeQuery('window=1d', '')).toThrow();
    expect(() => scopeQuery('window=1d', '  ')).toThrow();
  });
});

describe('filterProblem', () => {
  it.each([
    'namespace:"team-a"',
    'namespace:"a"|namespace:"b"',
    '(label[team]:"a")+cluster!:"prod"',
  ])('accepts %j', (text) => {
    expect(filterProblem(text)).toBeNull();
  });
  it.each([
    ['', /empty/],
    ['   ', /empty/],
    ['namespace', /expected/],
    ['namespace:"a"+cluster:"b"|pod:"c"', /parentheses/],
    ['namespace:"a\n"', /control/],
    [`namespace:"${'a'.repeat(5000)}"`, /longer/],
    [`${'('.repeat(17)}pod:"a"${')'.repeat(17)}`, /deeper/],
  ])('refuses %j', (text, message) => {
    expect(filterProblem(text)).toMatch(message);
  });
});

function isFilterName(pair: string): boolean {
  const name = pair.split('=')[0] ?? '';
  return decodeURIComponentSafe(name.replaceAll('+', ' ')) === 'filter';
}

function decodeURIComponentSafe(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}
