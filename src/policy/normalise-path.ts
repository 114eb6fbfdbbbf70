import { KeygateError } from '../errors.js';

export interface NormalisedTarget {
  /** The path that is authorised and, byte for byte, forwarded. */
  readonly path: string;
  /** Everything from the first "?" on, untouched (empty when there is none). */
  readonly query: string;
}

// Characters a path may carry raw: RFC 3986 pchar without ";" (path parameters are read
// differently by different servers, so they are refused rather than guessed at).
const RAW_ALLOWED = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/") {
  RAW_ALLOWED[c.charCodeAt(0)] = 1;
}
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
// Encoded characters whose meaning differs between servers: "/", "\", "%", "#", "?", ";", controls.
const REFUSED_ENCODED = new Set(['2F', '5C', '25', '23', '3F', '3B', '7F']);

// fatal: a byte sequence that is not UTF-8 (overlong "%C0%AE", lone continuation bytes,
// truncated sequences, UTF-16 surrogates "%ED%A0%80", code points above U+10FFFF) throws
// instead of becoming U+FFFD. Servers disagree on such bytes: some reject, some pass them
// through, some decode overlong forms to the ASCII they spell ("%C0%AE" as ".").
const UTF8 = new TextDecoder('utf-8', { fatal: true });

// Look-alikes of "/", "\" and "." that NFKC leaves alone but that Windows "best fit"
// code-page conversions or confusable folding can turn into the ASCII character.
// (The NFKC check below already covers fullwidth "／" "＼" "．", "․" U+2024, "‥" U+2025,
// small "﹨" U+FE68 and every other compatibility form.)
const LOOKALIKES = /[\u2215\u2044\u29F8\u2216\u29F5\u29F9\u00A5\u20A9]/u;

function reject(reason: string): never {
  throw new KeygateError('invalid_path', `request path refused: ${reason}`);
}

/**
 * Canonicalises a request target once, refusing anything two servers might read differently
 * instead of "fixing" it: the upstream must see exactly the path that was authorised.
 */
export function normaliseTarget(target: string): NormalisedTarget {
  if (target.charCodeAt(0) !== 47 /* / */)
    reject('only origin-form targets ("/path") are accepted');
  const q = target.indexOf('?');
  const raw = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q);

  let path = '';
  let plain = true;
  let nonAscii = false;
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code === 37 /* % */) {
      const hex = raw.slice(i + 1, i + 3).toUpperCase();
      if (!/^[0-9A-F]{2}$/.test(hex)) reject('malformed percent-encoding');
      const byte = Number.parseInt(hex, 16);
      if (byte < 0x20 || REFUSED_ENCODED.has(hex)) reject(`encoded character %${hex}`);
      if (byte >= 0x80) nonAscii = true;
      const char = String.fromCharCode(byte);
      if (plain) path = raw.slice(0, i);
      path += UNRESERVED.test(char) ? char : `%${hex}`;
      plain = false;
      i += 2;
    } else if (code < 128 && RAW_ALLOWED[code] === 1) {
      if (!plain) path += raw[i];
    } else {
      reject(code < 0x20 || code === 0x7f ? 'control character' : `character "${raw[i]}"`);
    }
  }
  if (plain) path = raw;
  // Only targets that carried an escape of a byte >= 0x80 get here: raw non-ASCII is refused
  // above, so the plain fast path never pays for this.
  if (nonAscii) checkEncodedText(path);

  if (path !== '/') {
    // Checked after decoding, so "%2e%2E" is caught as the ".." it becomes.
    const segments = path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const segment = segments[i];
      if (segment === '')
        reject(i === segments.length - 1 ? 'trailing "/"' : 'empty segment ("//")');
      if (segment === '.' || segment === '..') reject('dot segment');
    }
  }
  return { path, query };
}

/** Refuses encoded text that is not UTF-8, or that a Unicode-normalising server would change. */
function checkEncodedText(path: string): void {
  // `path` holds only ASCII and upper-case "%XX" escapes at this point.
  const bytes = Buffer.from(decodeEscapes(path), 'latin1');
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    reject('percent-encoded bytes are not valid UTF-8');
  }
  // A server that applies NFC or NFKC (some frameworks, some file systems) would read a
  // different path than the one authorised: fullwidth "／" (%EF%BC%8F) becomes "/", one-dot
  // leader "․" (%E2%80%A4) becomes ".". Go's net/http does not normalise, but refusing costs
  // nothing for ASCII API paths and removes the question.
  if (text.normalize('NFKC') !== text) reject('encoded text changes under Unicode normalisation');
  if (LOOKALIKES.test(text)) reject('encoded look-alike of "/", "\\" or "."');
  // C1 controls, as ASCII controls are; and invisible format characters (zero-width, bidi
  // overrides), which some servers strip and which make one path look like another in logs.
  if (/[\p{Cc}\p{Cf}]/u.test(text)) reject('encoded control or invisible format character');
}

function decodeEscapes(path: string): string {
  return path.replace(/%([0-9A-F]{2})/g, (_m, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );
}
