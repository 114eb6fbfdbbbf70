import { KeygateError } from '../errors.js';
import type { AccountFilters } from '../keys/account-filters.js';
import type { Principal } from '../keys/principal.js';
import { scopeQuery } from './filter-v2.js';
import type { Route } from './route-table.js';

/** Longest part of a refusal's detail shown to the client: enough to say what, no more. */
const DETAIL_MAX = 120;

/**
 * An account is filtered (team-scoped) when its filters hold any expression. Any own key counts,
 * even one that is no kind keygate knows or an empty expression: such a record was not written
 * through the validated paths, and refusing it is the safe reading (fail closed).
 */
export function isFiltered(filters: AccountFilters | undefined): boolean {
  if (filters === undefined) return false;
  return Object.values(filters).some((v) => v !== undefined);
}

/**
 * The query string (`""` or `"?…"`) to forward for this principal on this route (DESIGN §16).
 * Unfiltered accounts: the query as sent, the same string. Filtered accounts: refused on a route
 * that serves no filter kind, or a kind they hold no filter for (403 filter_required: never
 * forwarded unfiltered); otherwise the account's filter ANDed into the `filter` parameter, or
 * 400 invalid_filter when the client's filter or parameters cannot be scoped.
 */
export function scopedQuery(principal: Principal, route: Route, query: string): string {
  const filters = principal.filters;
  if (filters === undefined || !isFiltered(filters)) return query;
  const kind = route.filter;
  if (kind === undefined) {
    throw new KeygateError(
      'filter_required',
      `this key's account sees only filtered data, and route "${route.name}" applies no filter`,
    );
  }
  // Own properties only: a kind is one of three fixed names, but the record came from a store.
  const accountFilter = Object.hasOwn(filters, kind) ? filters[kind] : undefined;
  if (accountFilter === undefined || accountFilter.trim() === '') {
    throw new KeygateError(
      'filter_required',
      `this key's account sees only filtered data and has no ${kind} filter, which route "${route.name}" needs`,
    );
  }
  const scoped = scopeQuery(query === '' ? '' : query.slice(1), accountFilter);
  if (scoped.ok) return `?${scoped.query}`;
  const detail = shorten(scoped.detail);
  switch (scoped.reason) {
    case 'duplicate':
      throw new KeygateError('invalid_filter', 'send at most one filter parameter');
    case 'legacy':
      throw new KeygateError(
        'invalid_filter',
        `legacy filter parameters (${detail}) are refused for this key's account: use filter (v2)`,
      );
    default:
      throw new KeygateError(
        'invalid_filter',
        `the filter parameter is not a valid Kubecost filter (v2): ${detail}`,
      );
  }
}

/**
 * For targets where keygate cannot apply the account's filter: the admin API (an admin action by
 * a filtered account could mint a key for an unfiltered account, widening what it sees) and
 * authz mode (the data plane forwards the client's own query; keygate's answer cannot rewrite it).
 */
export function refuseFiltered(principal: Principal, where: 'admin' | 'authz'): void {
  if (!isFiltered(principal.filters)) return;
  throw new KeygateError(
    'filter_required',
    where === 'admin'
      ? "this key's account sees only filtered data: it cannot use the admin API"
      : "this key's account sees only filtered data, which authz mode cannot apply: call keygate in proxy mode",
  );
}

function shorten(text: string): string {
  // Control characters never reach a message (it is logged as well as answered).
  const clean = text.replace(/\p{Cc}/gu, '?');
  return clean.length <= DETAIL_MAX ? clean : `${clean.slice(0, DETAIL_MAX)}…`;
}
