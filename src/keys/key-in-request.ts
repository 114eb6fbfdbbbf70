import { KeygateError } from '../errors.js';
import { canonicalHeaderName } from '../shared/header-name.js';
import { containsKey } from './key-format.js';

/**
 * Finding a key where it must not be: in the request target, or in a header other than the
 * credential headers. Both are forwarded to the upstream (and end up in its logs), so a key
 * there is refused before anything else is looked at — whatever the credential headers say.
 *
 * Only checksum-valid keys of this deployment's prefix count, so look-alikes (`kg_7d`, a
 * truncated key, another deployment's key) pass. Percent-encoding is undone first, repeatedly:
 * the upstream decodes at least once (and some stacks twice), so `kg%5F…`, `%6B%67%5F…` and the
 * double-encoded `kg%255F…` all reach its logs as a key.
 */

/**
 * Rounds of decoding. Each round removes one layer; a target still changing after this many is
 * nested deeper than any server decodes, and the log masking still covers it.
 */
const MAX_DECODE_ROUNDS = 6;

// Header names whose value is the credential (or is never forwarded nor logged): the key
// belongs there. Compared by canonicalHeaderName: lower case, "_" read as "-".
const CREDENTIAL_HEADERS = new Set(['x-api-key', 'authorization', 'proxy-authorization', 'cookie']);

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  const lower = code | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

/**
 * One lenient round of percent-decoding: every `%XX` (and IIS-style `%uXXXX`) that stands for
 * an ASCII character is replaced by it; everything else — malformed escapes, non-ASCII bytes —
 * is kept as it is (a key is ASCII, and a strict decoder would throw on the very input an
 * attacker chooses). `+` is left alone: neither `+` nor the space it may stand for is a key
 * character or a separator, so decoding it can neither reveal nor hide a key.
 */
export function decodeOnce(text: string): string {
  let out = '';
  let copied = 0;
  for (let at = text.indexOf('%'); at !== -1; at = text.indexOf('%', at + 1)) {
    let value = -1;
    let length = 3;
    const h1 = hexValue(text.charCodeAt(at + 1));
    const h2 = hexValue(text.charCodeAt(at + 2));
    if (h1 >= 0 && h2 >= 0) value = h1 * 16 + h2;
    else if ((text.charCodeAt(at + 1) | 0x20) === 117 /* u */) {
      const digits = [2, 3, 4, 5].map((k) => hexValue(text.charCodeAt(at + k)));
      if (digits.every((d) => d >= 0)) {
        value = digits.reduce((acc, d) => acc * 16 + d, 0);
        length = 6;
      }
    }
    if (value < 0 || value >= 0x80) continue;
    out += text.slice(copied, at) + String.fromCharCode(value);
    copied = at + length;
    at = copied - 1;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** True when `text`, raw or after any number of decoding rounds (up to a bound), holds a key. */
export function carriesKey(text: string, prefix: string): boolean {
  let current = text;
  for (let round = 0; round <= MAX_DECODE_ROUNDS; round++) {
    if (containsKey(current, prefix)) return true;
    const next = decodeOnce(current);
    if (next === current) return false;
    current = next;
  }
  return false;
}

/**
 * Refuses a request whose target or forwarded headers carry a key of this deployment.
 * Runs before credential extraction: the answer must not depend on the credential headers.
 */
export function refuseMisplacedKeys(
  url: string,
  rawHeaders: readonly string[],
  prefix: string,
): void {
  if (carriesKey(url, prefix)) {
    throw new KeygateError(
      'credential_in_url',
      'the URL contains an API key; send keys only in X-API-KEY or Authorization, and rotate this one',
    );
  }
  for (let i = 0; i < rawHeaders.length; i += 2) {
    // The name is forwarded too (lower-cased: too late to recognise the key), and a key pasted
    // as a header line without its name ("<key>: x", or split at a ":" inside it) ends up there;
    // name and value are read as one text, in the case the client sent them.
    const rawName = rawHeaders[i] as string;
    const text = rawName + (rawHeaders[i + 1] ?? '');
    // Cheap pre-filter: a header without the prefix (or an escape) cannot hold a key.
    if (!text.includes(prefix) && !text.includes('%')) continue;
    const name = canonicalHeaderName(rawName);
    if (CREDENTIAL_HEADERS.has(name)) continue;
    if (carriesKey(text, prefix)) {
      throw new KeygateError(
        'credential_in_header',
        'a header other than X-API-KEY or Authorization contains an API key; it would be forwarded, so the request is refused: rotate this key',
      );
    }
  }
}
