/**
 * keygate's own path prefix: the admin API lives under it, it is never forwarded, and no route
 * rule may claim it (config/schema.ts compares its segment case-insensitively, to refuse
 * look-alikes). The one definition; everything else derives from it.
 */
export const KEYGATE_PREFIX = '/_keygate';

/** The admin API's current version; anything else under KEYGATE_PREFIX is 404. */
export const ADMIN_API_PREFIX = `${KEYGATE_PREFIX}/v1`;

/** `path` is `prefix` itself or below it (`/_keygatex` is not below `/_keygate`). */
export function isUnder(path: string, prefix: string): boolean {
  return (
    path.startsWith(prefix) &&
    (path.length === prefix.length || path.charCodeAt(prefix.length) === 47)
  );
}
