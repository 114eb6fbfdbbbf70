// TEMPORARY: replaced by slice FILTER-CORE at merge
// Only filterProblem (the write-time check) is here, so slice FILTER-MGMT can validate account
// filters before the real v2 parser lands; its answers are a subset of what the real one refuses.

/** For write-time validation of an account's filter (admin API/CLI/apply): null when valid. */
export function filterProblem(text: string): string | null {
  if (text.trim() === '') return 'empty filter';
  let depth = 0;
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === '(') depth++;
    else if (!quoted && ch === ')') {
      depth--;
      if (depth < 0) return 'unbalanced ")"';
    }
  }
  if (quoted) return 'unterminated quoted value';
  if (depth !== 0) return 'unbalanced "("';
  return null;
}
