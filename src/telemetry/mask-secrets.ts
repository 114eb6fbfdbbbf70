/**
 * Masking of anything that could be a key's secret, in any surroundings and any encoding.
 *
 * A key is `<prefix>_<id>_<secret><checksum>`: its secret half is 49 base62 characters. A
 * pattern anchored on word boundaries or on the `_` separators misses a key glued to other
 * word characters (`a_<key>`, `<key>x`) and every encoded form (`kg%5F…`, `%41%42…`,
 * double-encoded `%2541`). So this does not look for keys at all: it masks every run of at
 * least SECRET_RUN characters that can spell a secret in some encoding, whatever is around it.
 *
 * Run characters: base62, `%` and `\`. Counting `%` and `\` as run characters themselves
 * (rather than counting a whole `%XX` escape as one unit) makes every escape form part of a
 * run — `%XX`, `%25XX`, IIS-style `%uXXXX`, a stray `%%34%31` that a lenient decoder turns
 * into `%41` and then `A`, JSON's `\u0041` — and an encoded run is only ever longer than the
 * raw one, so it can only cross the threshold sooner. `_` is deliberately not one: the
 * public `<prefix>_<id>_` in front of the secret stays readable for operators.
 *
 * The threshold is the secret's own length (43 characters, 256 bits, before the checksum):
 * shorter runs — UUIDs, 32-hex trace ids, key ids — are left alone; longer ones, such as a
 * SHA-256 in hex, are masked too, a price paid for never having to recognise a key.
 *
 * A linear pass over char codes: no regex, no backtracking, no allocation when nothing is
 * masked, and a skip-ahead check first (the common case for the access line on every request).
 */

const BACKSLASH = 92;

/** Shortest run that is masked: a key's secret without its checksum. */
const SECRET_RUN = 43;
export const REDACTED = '[REDACTED]';

const RUN_CHAR = new Uint8Array(128);
for (const c of '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz%\\') {
  RUN_CHAR[c.charCodeAt(0)] = 1;
}

/** Replaces every run of SECRET_RUN or more run characters with `[REDACTED]`. */
export function maskSecretRuns(text: string): string {
  // The common case (every access line): nothing to mask, found without visiting every char.
  if (!hasSecretRun(text)) return text;
  const n = text.length;
  let out: string | undefined;
  let copied = 0; // text before this index is already in `out`
  let runStart = -1;
  // One step past the end (code 0 is not a run character) closes a run at the end of text.
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 0;
    if (c < 128 && RUN_CHAR[c] === 1) {
      if (runStart < 0) runStart = i;
    } else if (runStart >= 0) {
      if (i - runStart >= SECRET_RUN) {
        // `\` is a run character, so a run can end in the backslash of a JSON escape whose
        // other half is not (`\"`): masking that backslash would unescape the quote and let a
        // client cut its own log line short (`/AAA…A"}`). An odd number of trailing
        // backslashes means the last one escapes what follows: keep that one.
        let slashes = 0;
        while (slashes < i - runStart && text.charCodeAt(i - 1 - slashes) === BACKSLASH) slashes++;
        const keep = slashes % 2 === 1 ? '\\' : '';
        out = `${out ?? ''}${text.slice(copied, runStart)}${REDACTED}${keep}`;
        copied = i;
      }
      runStart = -1;
    }
  }
  return out === undefined ? text : out + text.slice(copied);
}

/**
 * True when `text` holds a run that maskSecretRuns would mask. Skips ahead: a run of SECRET_RUN
 * characters covers every window of that length it sits in, so only the last character of each
 * window needs a look until one is a run character; then the run is measured backwards. An
 * ordinary log line (no long run) costs about length ÷ SECRET_RUN look-ups, not length.
 */
export function hasSecretRun(text: string): boolean {
  const n = text.length;
  let end = SECRET_RUN - 1; // last index of the window being tested
  while (end < n) {
    if (!isRunChar(text.charCodeAt(end))) {
      end += SECRET_RUN; // no run of SECRET_RUN can include `end`
      continue;
    }
    // Walk back from `end`: if the whole window is run characters, a run is found.
    let start = end - 1;
    const windowStart = end - SECRET_RUN + 1;
    while (start >= windowStart && isRunChar(text.charCodeAt(start))) start--;
    if (start < windowStart) return true;
    // `start` is not a run character: the next possible window begins just after it.
    end = start + SECRET_RUN;
  }
  return false;
}

function isRunChar(c: number): boolean {
  return c < 128 && RUN_CHAR[c] === 1;
}
