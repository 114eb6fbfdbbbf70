import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import type { AccountFilters } from '../../../src/keys/account-filters.js';
import type { Principal } from '../../../src/keys/principal.js';
import type { FilterKind } from '../../../src/policy/filter-kinds.js';
import { isFiltered, refuseFiltered, scopedQuery } from '../../../src/policy/filter-scope.js';
import type { Route } from '../../../src/policy/route-table.js';

const TEAM = 'namespace:"team-a"';

function principal(filters?: AccountFilters): Principal {
  return {
    keyId: 'AAAAAAAAAAAA',
    account: 'a',
    role: 'reader',
    scopes: new Set(['read']),
    expiresAt: 0,
    rateLimit: undefined,
    filters,
  };
}

function route(filter: FilterKind | undefined, name = 'r'): Route {
  return {
    name,
    methods: new Set(['GET']),
    scopes: ['read'],
    pattern: '/x',
    filter,
    matches: () => true,
  };
}

/** Go's url.ParseQuery, independently of src: split on "&", first "=", "+" is a space. */
function goParams(query: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const part of query.split('&')) {
    if (part === '' || part.includes(';')) continue;
    const eq = part.indexOf('=');
    const dec = (s: string) => {
      try {
        return decodeURIComponent(s.replaceAll('+', ' '));
      } catch {
        return undefined;
      }
    };
    const k = dec(eq === -1 ? part : part.slice(0, eq));
    const v = dec(eq === -1 ? '' : part.slice(eq + 1));
    if (k !== undefined && v !== undefined) out.push([k, v]);
  }
  return out;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(KeygateError);
    return (err as KeygateError).code;
  }
}

describe('isFiltered', () => {
  it.each<[string, AccountFilters | undefined, boolean]>([
    ['no filters', undefined, false],
    ['empty object', {}, false],
    ['one kind', { allocation: TEAM }, true],
    ['an empty expression still counts (fail closed)', { assets: '' }, true],
  ])('%s → %s', (_name, filters, expected) => {
    expect(isFiltered(filters)).toBe(expected);
  });

  it('an unknown or hostile kind from a stored record counts as filtered (fail closed)', () => {
    const hostile = JSON.parse('{"__proto__": "x", "constructor": "y"}') as AccountFilters;
    expect(isFiltered(hostile)).toBe(true);
    // …and it names no kind, so every route refuses it.
    expect(codeOf(() => scopedQuery(principal(hostile), route('allocation'), ''))).toBe(
      'filter_required',
    );
  });
});

describe('scopedQuery', () => {
  it('unfiltered accounts: the query is returned as sent, the same string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.constantFrom(undefined, {}), (q, filters) => {
        const query = `?${q}`;
        expect(scopedQuery(principal(filters), route(undefined), query)).toBe(query);
        expect(scopedQuery(principal(filters), route('allocation'), query)).toBe(query);
      }),
    );
  });

  it('a filtered account on a route without a kind: 403 filter_required', () => {
    expect(codeOf(() => scopedQuery(principal({ allocation: TEAM }), route(undefined), ''))).toBe(
      'filter_required',
    );
  });

  it('a filtered account on a kind it has no filter for: 403, never forwarded unfiltered', () => {
    const p = principal({ allocation: TEAM });
    expect(codeOf(() => scopedQuery(p, route('assets'), '?window=1d'))).toBe('filter_required');
    expect(codeOf(() => scopedQuery(p, route('cloudCost'), ''))).toBe('filter_required');
    // An empty or blank expression for the kind is no filter either.
    const blank = principal({ allocation: TEAM, assets: '  ' });
    expect(codeOf(() => scopedQuery(blank, route('assets'), ''))).toBe('filter_required');
  });

  it("no client filter: the account's filter is added, the rest kept", () => {
    const out = scopedQuery(principal({ allocation: TEAM }), route('allocation'), '?window=1d');
    expect(out.startsWith('?window=1d&')).toBe(true);
    expect(goParams(out.slice(1))).toEqual([
      ['window', '1d'],
      ['filter', TEAM],
    ]);
    expect(
      goParams(scopedQuery(principal({ allocation: TEAM }), route('allocation'), '').slice(1)),
    ).toEqual([['filter', TEAM]]);
  });

  it.each([
    ['two filter parameters', '?filter=cluster:"a"&filter=cluster:"b"'],
    ['an empty and a full one', '?filter=&filter=cluster:"b"'],
    ['a legacy v1 parameter', '?filterNamespaces=kube-system'],
    ['a legacy v1 parameter, encoded name', '?%66ilterClusters=c1'],
    ['unbalanced parenthesis', '?filter=(cluster:"a"'],
    ['stray quote', '?filter=cluster:"a'],
  ])('%s → 400 invalid_filter', (_name, query) => {
    expect(
      codeOf(() => scopedQuery(principal({ allocation: TEAM }), route('allocation'), query)),
    ).toBe('invalid_filter');
  });

  it('a refusal says what, in a bounded message without control characters', () => {
    const name = `filterX${'a'.repeat(2000)}%0A%1B`;
    try {
      scopedQuery(principal({ allocation: TEAM }), route('allocation'), `?${name}=1`);
      expect.unreachable();
    } catch (err) {
      const message = (err as KeygateError).message;
      expect((err as KeygateError).code).toBe('invalid_filter');
      expect(message).toMatch(/legacy filter parameters/);
      expect(message.length).toBeLessThan(300);
      expect(message).not.toMatch(/\p{Cc}/u);
    }
  });

  it('property: refused with 400, or every other parameter kept byte for byte and one filter that ANDs the account in', () => {
    const safeName = fc.stringMatching(/^[a-eg-z][A-Za-z0-9_]{0,8}$/);
    const value = fc.stringMatching(/^[A-Za-z0-9%+:,"()|#~-]{0,12}$/);
    const other = fc.tuple(safeName, value).map(([k, v]) => `${k}=${v}`);
    const client = fc.option(
      fc.constantFrom(
        'cluster:"c1"',
        'cluster%3A%22c1%22',
        'namespace:"x"|namespace:"y"',
        ')|(namespace:"kube-system"',
        'label[app]:"a"+cluster!:"b"',
        '',
      ),
    );
    fc.assert(
      fc.property(fc.array(other, { maxLength: 5 }), client, fc.nat(5), (others, c, at) => {
        const parts = [...others];
        if (c !== null) parts.splice(Math.min(at, parts.length), 0, `filter=${c}`);
        const query = parts.length === 0 ? '' : `?${parts.join('&')}`;
        let out: string;
        try {
          out = scopedQuery(principal({ allocation: TEAM }), route('allocation'), query);
        } catch (err) {
          expect((err as KeygateError).code).toBe('invalid_filter');
          return;
        }
        expect(out.startsWith('?')).toBe(true);
        const outParts = out.slice(1).split('&');
        const kept = outParts.filter((p) => !/^filter=/.test(p));
        expect(kept).toEqual(others);
        const filters = goParams(out.slice(1)).filter(([k]) => k === 'filter');
        expect(filters).toHaveLength(1);
        const text = filters[0]?.[1] ?? '';
        expect(text === TEAM || text.startsWith(`(${TEAM})+(`)).toBe(true);
      }),
    );
  });
});

describe('refuseFiltered (admin API, authz mode)', () => {
  it.each(['admin', 'authz'] as const)(
    '%s: filtered → 403 filter_required; unfiltered passes',
    (where) => {
      expect(codeOf(() => refuseFiltered(principal({ cloudCost: 'provider:"AWS"' }), where))).toBe(
        'filter_required',
      );
      expect(codeOf(() => refuseFiltered(principal(), where))).toBeUndefined();
      expect(codeOf(() => refuseFiltered(principal({}), where))).toBeUndefined();
    },
  );
});
