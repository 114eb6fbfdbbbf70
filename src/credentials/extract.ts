import { KeygateError } from '../errors.js';

/** Where the presented key came from; kept for the access log, never the key itself. */
export type CredentialSource = 'x-api-key' | 'bearer' | 'basic';

export interface PresentedCredential {
  readonly source: CredentialSource;
  readonly key: string;
}

/**
 * Finds the one API key a request carries, reading raw headers so that duplicates are seen
 * (node joins repeated X-API-KEY values with ", ", which would hide them).
 *
 * Accepted: `X-API-KEY: <key>`, `Authorization: Bearer <key>`,
 * `Authorization: Basic base64(<key>:<anything>)`. Two credentials, or two copies of one,
 * are refused with 400 rather than guessing which one the caller meant; so is X-API-KEY
 * spelled with "_", which some servers read as X-API-KEY and others as another header.
 */
export function extractCredential(rawHeaders: readonly string[]): PresentedCredential {
  let apiKey: string | undefined;
  let authorization: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === 9) {
      const lower = name.toLowerCase();
      if (lower === 'x-api-key') {
        if (apiKey !== undefined)
          throw new KeygateError('ambiguous_credentials', 'duplicate X-API-KEY header');
        apiKey = rawHeaders[i + 1] ?? '';
      } else if (lower.replaceAll('_', '-') === 'x-api-key') {
        // "X_API_KEY" is the same header to servers that read "_" as "-" (CGI/WSGI, nginx with
        // underscores_in_headers, Envoy by default) and a different one to keygate and Go.
        // Accepting it, or ignoring it next to a real X-API-KEY, would let two hops read two
        // different keys; refusing it leaves nothing to guess.
        throw new KeygateError(
          'ambiguous_credentials',
          'credential header name spelled with "_": send the key as X-API-KEY',
        );
      }
    } else if (name.length === 13 && name.toLowerCase() === 'authorization') {
      if (authorization !== undefined) {
        throw new KeygateError('ambiguous_credentials', 'duplicate Authorization header');
      }
      authorization = rawHeaders[i + 1] ?? '';
    }
  }
  if (apiKey !== undefined && authorization !== undefined) {
    throw new KeygateError(
      'ambiguous_credentials',
      'send the key either as X-API-KEY or in Authorization, not both',
    );
  }
  if (apiKey !== undefined) {
    const key = apiKey.trim();
    if (key === '') throw new KeygateError('missing_credentials', 'X-API-KEY header is empty');
    return { source: 'x-api-key', key };
  }
  if (authorization !== undefined) return fromAuthorization(authorization);
  throw new KeygateError(
    'missing_credentials',
    'an API key is required: send it as X-API-KEY or Authorization: Bearer',
  );
}

function fromAuthorization(value: string): PresentedCredential {
  const trimmed = value.trim();
  const space = trimmed.indexOf(' ');
  const scheme = (space === -1 ? trimmed : trimmed.slice(0, space)).toLowerCase();
  const param = space === -1 ? '' : trimmed.slice(space + 1).trim();
  if (scheme === 'bearer') {
    if (param === '') throw new KeygateError('missing_credentials', 'Bearer token is empty');
    return { source: 'bearer', key: param };
  }
  if (scheme === 'basic') {
    // Basic carries base64(user:password); the key is the user name, the password is ignored.
    const decoded = Buffer.from(param, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const key = (colon === -1 ? decoded : decoded.slice(0, colon)).trim();
    if (key === '') throw new KeygateError('missing_credentials', 'Basic credentials carry no key');
    return { source: 'basic', key };
  }
  throw new KeygateError(
    'missing_credentials',
    'unsupported Authorization scheme: use Bearer or Basic, or the X-API-KEY header',
  );
}
