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
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code === 37 /* % */) {
      const hex = raw.slice(i + 1, i + 3).toUpperCase();
      if (!/^[0-9A-F]{2}$/.test(hex)) reject('malformed percent-encoding');
      const byte = Number.parseInt(hex, 16);
      if (byte < 0x20 || REFUSED_ENCODED.has(hex)) reject(`encoded character %${hex}`);
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
