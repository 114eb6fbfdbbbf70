// TEMPORARY: replaced by slice FILTER-CORE at merge
//
// The contract's signatures (contract14.md) with a stand-in body, just enough for the pipeline
// stage and its tests: it parses nothing (only counts quotes and parentheses), ANDs by string,
// and finds duplicate and legacy parameters by their Go-decoded names.

/** A parsed filter. The real type is FILTER-CORE's AST; here the text stands in for it. */
export type FilterNode = { readonly kind: 'raw'; readonly text: string };

export class FilterSyntaxError extends Error {
  override readonly name = 'FilterSyntaxError';
}

/** Parses a v2 filter exactly as Kubecost does; throws FilterSyntaxError (message says where). */
export function parseFilterV2(text: string): FilterNode {
  const problem = filterProblem(text);
  if (problem !== null) throw new FilterSyntaxError(problem);
  return { kind: 'raw', text };
}

/** For write-time validation of an account's filter (admin API/CLI/apply): null when valid. */
export function filterProblem(text: string): string | null {
  if (text.trim() === '') return 'empty filter';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '(') depth++;
    else if (!quoted && c === ')' && --depth < 0) return `unbalanced ")" at ${i}`;
  }
  if (quoted) return 'unterminated quoted value';
  if (depth !== 0) return 'unbalanced "("';
  return null;
}

/**
 * The query string (raw bytes after '?', without '?') to forward for an account whose filter for
 * this kind is `accountFilter`. Every other parameter is kept byte for byte, in order; the
 * `filter` parameter becomes `(<account>)+(<client>)` (or just the account's when the client
 * sent none), percent-encoded as needed.
 */
export function scopeQuery(
  rawQuery: string,
  accountFilter: string,
):
  | { ok: true; query: string }
  | { ok: false; reason: 'syntax' | 'duplicate' | 'legacy'; detail: string } {
  const parts = rawQuery === '' ? [] : rawQuery.split('&');
  let at = -1;
  let client: string | undefined;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const eq = part.indexOf('=');
    const name = goDecode(eq === -1 ? part : part.slice(0, eq));
    if (name === undefined) continue;
    if (/^filter[A-Z]/.test(name)) return { ok: false, reason: 'legacy', detail: name };
    if (name !== 'filter') continue;
    if (at !== -1) return { ok: false, reason: 'duplicate', detail: 'two filter parameters' };
    at = i;
    const value = goDecode(eq === -1 ? '' : part.slice(eq + 1));
    if (value === undefined) return { ok: false, reason: 'syntax', detail: 'bad escape' };
    client = value;
  }
  let combined = accountFilter;
  if (client !== undefined && client.trim() !== '') {
    const problem = filterProblem(client);
    if (problem !== null) return { ok: false, reason: 'syntax', detail: problem };
    combined = `(${accountFilter})+(${client})`;
  }
  const param = `filter=${encodeURIComponent(combined)}`;
  if (at === -1) parts.push(param);
  else parts[at] = param;
  return { ok: true, query: parts.join('&') };
}

/** Go's url.QueryUnescape: "+" is a space; a bad escape is an error (undefined). */
function goDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}
