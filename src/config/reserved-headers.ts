import { canonicalHeaderName } from '../shared/header-name.js';

/**
 * Header names an identity header must never take. keygate sets each identity header on the
 * upstream request after dropping the client's copies; naming one after a header that frames
 * the message, carries a credential, or says where the request came from would let that
 * setting overwrite (or be overwritten by) something the upstream trusts for another reason.
 */

/** Exact names (lower case, "_" read as "-"). */
const RESERVED_NAMES = new Set([
  // Message framing and hop-by-hop (RFC 9110 §7.6.1, RFC 9112): changing these desyncs or
  // breaks the connection to the upstream.
  'host',
  'content-length',
  'content-type',
  'content-encoding',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'http2-settings',
  // Credentials: keygate's own (X-API-KEY, Authorization), and the upstream's.
  'authorization',
  'x-api-key',
  'cookie',
  'set-cookie',
  // Where the request came from and what it is: keygate sets or drops these itself.
  'forwarded',
  'via',
  'x-real-ip',
  'x-request-id',
  'true-client-ip',
  'x-client-ip',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);

/** Families, by prefix. */
const OBJECT_PROPERTIES: ReadonlySet<string> = new Set(
  Object.getOwnPropertyNames(Object.prototype).map((n) => n.toLowerCase()),
);

const RESERVED_PREFIXES = ['proxy-', 'x-forwarded-', 'x-original-', 'x-envoy-', 'sec-'];

/** Why `name` may not be an identity header, or undefined when it may. */
export function reservedHeaderReason(name: string): string | undefined {
  const canonical = canonicalHeaderName(name);
  if (RESERVED_NAMES.has(canonical)) {
    return `"${name}" is a framing, credential or forwarding header that keygate handles itself`;
  }
  const prefix = RESERVED_PREFIXES.find((p) => canonical.startsWith(p));
  if (prefix !== undefined) {
    return `"${name}" is in the ${prefix}* family of headers that keygate handles itself`;
  }
  // Names that are properties of every JavaScript object: harmless with null-prototype header
  // maps, refused anyway so that no code path ever has to be right about it.
  if (OBJECT_PROPERTIES.has(canonical)) {
    return `"${name}" is the name of a JavaScript object property`;
  }
  return undefined;
}
