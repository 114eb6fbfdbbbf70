import { type AccountFilters, FILTER_KINDS, isFilterKind } from '../keys/account-filters.js';
import { UsageError, type Values } from './args.js';

/** One `--filter KIND=EXPR`: set the kind's filter, or (empty EXPR) remove it. */
export interface FilterEdit {
  kind: keyof AccountFilters;
  /** undefined: `KIND=` removes the kind's filter. */
  expression: string | undefined;
}

/**
 * Reads the repeatable `--filter KIND=EXPR` options. KIND is checked here (a typo is bad usage,
 * exit 2); EXPR is checked by KeyService, locally or on the server, like the admin API's.
 */
export function filterEdits(values: Values): FilterEdit[] {
  const raw = values.filter;
  const given = Array.isArray(raw) ? raw : typeof raw === 'string' ? [raw] : [];
  const seen = new Set<string>();
  return given.map((option) => {
    const at = option.indexOf('=');
    if (at < 0)
      throw new UsageError(
        `--filter expects KIND=EXPR, e.g. --filter allocation='namespace:"team-a"' (kinds: ${FILTER_KINDS.join(', ')})`,
      );
    const kind = option.slice(0, at);
    if (!isFilterKind(kind))
      throw new UsageError(
        `--filter: unknown kind${/^[A-Za-z0-9_-]{1,40}$/.test(kind) ? ` "${kind}"` : ''} (kinds: ${FILTER_KINDS.join(', ')})`,
      );
    // Twice the same kind is ambiguous (which one wins?): refused rather than guessed.
    if (seen.has(kind)) throw new UsageError(`--filter ${kind} is given twice`);
    seen.add(kind);
    const expression = option.slice(at + 1);
    return { kind, expression: expression === '' ? undefined : expression };
  });
}

/** `current` with the edits applied (a new object; `current` is left alone). */
export function editFilters(current: AccountFilters, edits: readonly FilterEdit[]): AccountFilters {
  const next: AccountFilters = { ...current };
  for (const { kind, expression } of edits) {
    if (expression === undefined) delete next[kind];
    else next[kind] = expression;
  }
  return next;
}

/** For `accounts show`: one line per filtered kind, or "none". */
export function filterLines(filters: AccountFilters): string {
  const set = FILTER_KINDS.filter((k) => filters[k] !== undefined);
  if (set.length === 0) return 'filters: none';
  return `filters:\n${set.map((k) => `  ${k}: ${shown(filters[k] ?? '')}`).join('\n')}`;
}

/** For `accounts list`: the filtered kinds, or "-". */
export function filterKinds(filters: AccountFilters): string {
  const set = FILTER_KINDS.filter((k) => filters[k] !== undefined);
  return set.length === 0 ? '-' : set.join(',');
}

/** A server's text on a terminal: control characters (escape sequences) shown as "?". */
function shown(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing them is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
