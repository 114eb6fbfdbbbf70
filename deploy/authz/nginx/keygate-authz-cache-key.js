// The cache key of keygate-authz-cache.conf for nginx builds without set-misc (nginx.org ships
// njs): a SHA-256 of everything keygate's answer depends on, so that nginx, which writes each
// cache key in clear into its cache file, never writes a credential to disk. Loaded with `js_import` (njs, Debian: libnginx-mod-http-js).
//
// Hashed: the original method and request URI (what the snippet sends keygate as
// X-Original-Method / X-Original-URI), and every value of the two headers keygate reads the
// credential from, in order and with duplicates, names folded the way keygate folds them
// (lower case, "_" as "-"). Nothing else of the request reaches keygate's decision: the snippet
// hides a client's own X-Original-URL / X-Forwarded-Uri / X-Forwarded-Method from it. A
// request that differs in any hashed part is a different key, so it is asked about, never
// served an answer given for another (a duplicated credential header too: keygate refuses
// that). Other headers (User-Agent, trace ids) are left out on purpose: keygate does not read
// them, and hashing them would make every request a miss.
//
// njs 0.7 (Debian bookworm) has no for…of and no Object.hasOwn: plain loops and a list.
// biome-ignore lint/style/useNodejsImportProtocol: njs, not Node: it knows the module as 'crypto' only
import crypto from 'crypto';

// A list, not an object: a header named "__proto__" or "constructor" must not match anything.
// Their lengths are 9 and 13: a cheap first filter, since this runs on every request.
const DECIDING = ['x-api-key', 'authorization'];

function key(r) {
  const hash = crypto.createHash('sha256');
  hash.update(`${r.variables.request_method}\n${r.variables.request_uri}\n`);
  const raw = r.rawHeadersIn;
  for (let i = 0; i < raw.length; i++) {
    const header = raw[i][0];
    if (header.length !== 9 && header.length !== 13) continue;
    const name = header.toLowerCase().replace(/_/g, '-');
    if (DECIDING.indexOf(name) !== -1) hash.update(`${name}\n${raw[i][1]}\n`);
  }
  // Unambiguous with "\n" between parts: nginx ends a header line at LF, so no method, URI,
  // name or value can hold one.
  return hash.digest('base64url');
}

export default { key };
