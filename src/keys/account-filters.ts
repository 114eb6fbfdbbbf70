import { KeygateError } from '../errors.js';
import { FILTER_KINDS, type FilterKind } from '../policy/filter-kinds.js';
import { filterProblem } from '../policy/filter-v2.js';
import { ownEntry } from '../shared/null-proto-record.js';

/**
 * An account's data filters (DESIGN §16): per kind of Kubecost data, a filter language v2
 * expression that keygate ANDs into every request for that kind. Absent or `{}` = not filtered.
 */
export interface AccountFilters {
  allocation?: string;
  assets?: string;
  cloudCost?: string;
}

// The kinds, in the order they are shown; closed: an unknown kind is refused, never stored.
// One list for accounts and route rules (src/policy/filter-kinds.ts).
export { FILTER_KINDS, type FilterKind };

/**
 * Longest expression per kind, in UTF-8 bytes. A team's filter is a few namespaces or labels;
 * the bound keeps every request's forwarded query (and each store record) small, and three of
 * them fit the admin API's 16 KiB body.
 */
export const MAX_FILTER_BYTES = 4096;

export function isFilterKind(value: string): value is FilterKind {
  return (FILTER_KINDS as readonly string[]).includes(value);
}

function refuse(path: string, message: string): KeygateError {
  return new KeygateError('bad_request', `${path}: ${message}`);
}

/** A kind from a client, echoed only when it is short and plain (it may be anything). */
function shownKind(kind: string): string {
  return /^[A-Za-z0-9_-]{1,40}$/.test(kind) ? kind : `(a kind of ${kind.length} characters)`;
}

/**
 * Validates filters from any source (admin API body, CLI, accounts file) and returns them as a
 * fresh object holding only the known kinds. Every refusal is bad_request naming the path of
 * the value (`filters.allocation: …`). An expression must parse as v2 (filterProblem): a filter
 * the gateway could not combine would otherwise refuse every request of the account, far from
 * the write that caused it. Control characters are refused too: no real label or namespace has
 * one, and they would reach terminals (`accounts show`) and query strings.
 */
export function checkFilters(raw: unknown, path = 'filters'): AccountFilters {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw refuse(path, `expected a mapping of kind to filter (kinds: ${FILTER_KINDS.join(', ')})`);
  const checked: AccountFilters = {};
  for (const kind of Object.keys(raw)) {
    // `__proto__` (an own key after JSON.parse), `constructor`, `Allocation`: all unknown.
    if (!isFilterKind(kind))
      throw refuse(
        `${path}.${shownKind(kind)}`,
        `unknown filter kind (kinds: ${FILTER_KINDS.join(', ')})`,
      );
    checked[kind] = checkExpression(
      ownEntry(raw as Record<string, unknown>, kind),
      `${path}.${kind}`,
    );
  }
  return checked;
}

function checkExpression(value: unknown, path: string): string {
  if (typeof value !== 'string') throw refuse(path, 'expected a filter expression (a string)');
  if (Buffer.byteLength(value) > MAX_FILTER_BYTES)
    throw refuse(path, `at most ${MAX_FILTER_BYTES} bytes`);
  if (value.trim() === '')
    throw refuse(path, 'empty; leave the kind out (or send {} for filters) to remove its filter');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value))
    throw refuse(path, 'control characters are not allowed in a filter');
  const problem = filterProblem(value);
  if (problem !== null) throw refuse(path, `not a valid Kubecost filter (v2): ${problem}`);
  return value;
}

/** True when at least one kind is filtered. */
export function isFiltered(filters: AccountFilters | undefined): filters is AccountFilters {
  return filters !== undefined && FILTER_KINDS.some((k) => filters[k] !== undefined);
}

/** Same filters: absent and `{}` are the same (not filtered). */
export function sameFilters(a: AccountFilters | undefined, b: AccountFilters | undefined): boolean {
  return FILTER_KINDS.every((k) => a?.[k] === b?.[k]);
}

/** A copy holding only the set kinds, in FILTER_KINDS order (what every view and store shows). */
export function copyFilters(filters: AccountFilters | undefined): AccountFilters {
  const copy: AccountFilters = {};
  for (const kind of FILTER_KINDS) {
    const value = filters?.[kind];
    if (value !== undefined) copy[kind] = value;
  }
  return copy;
}

/**
 * What a Principal carries: a frozen copy, or undefined when the account is not filtered, so
 * the pipeline has one test (`principal.filters === undefined`) for "sees everything".
 */
export function principalFilters(filters: AccountFilters | undefined): AccountFilters | undefined {
  return isFiltered(filters) ? Object.freeze(copyFilters(filters)) : undefined;
}

/**
 * Redis stores the filters as one JSON field ("" = none). A stored value that is not exactly
 * that shape throws: decoding it as "no filters" would let a team key see every team's costs.
 */
export function encodeFilters(filters: AccountFilters | undefined): string {
  return isFiltered(filters) ? JSON.stringify(copyFilters(filters)) : '';
}

export function decodeFilters(text: string | undefined): AccountFilters | undefined {
  if (text === undefined || text === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw malformedStored();
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw malformedStored();
  const filters: AccountFilters = {};
  for (const kind of Object.keys(parsed)) {
    const value = ownEntry(parsed as Record<string, unknown>, kind);
    if (!isFilterKind(kind) || typeof value !== 'string') throw malformedStored();
    filters[kind] = value;
  }
  return isFiltered(filters) ? copyFilters(filters) : undefined;
}

function malformedStored(): KeygateError {
  return new KeygateError(
    'store_unavailable',
    'a stored service account has malformed filters; refusing rather than serving it unfiltered',
  );
}
