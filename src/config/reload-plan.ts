import { canonicalHeaderName } from '../shared/header-name.js';
import type { ConfigProblem } from './load.js';
import type { Config } from './schema.js';

/**
 * What a running keygate takes from a new config file without a restart: the per-request
 * policy, read once per request from the reloadable policy holder. Paths as code reads them
 * (durations end in "Ms"); a path not listed here (and not under one listed) needs a restart.
 * An allow-list on purpose: a field added to the schema later is restart-only until someone
 * makes it reloadable and adds it here.
 */
export const RELOADABLE_PATHS = [
  'routes',
  'roles',
  'identityHeaders',
  'trustedProxies',
  'upstream.dropHeaders',
  'upstream.stripPrefix',
  'authz.cacheTtlMs',
  'listen.maxInflightPerAccount',
  'listen.bodyIdleTimeoutMs',
  'rateLimits',
  'rateLimitStoreDown',
  'log.level',
] as const;

export interface ReloadPlan {
  /**
   * The config to run with: the new file's reloadable fields on top of the running config's
   * restart-only ones. What the holder serves and what the next reload is compared with.
   */
  readonly effective: Readonly<Config>;
  /** Reloadable paths whose value changed (as the user writes them: no "Ms"). */
  readonly applied: readonly string[];
  /** Restart-only paths whose value changed: the running value is kept for each. */
  readonly needsRestart: readonly string[];
  /**
   * Problems of the combination itself (a new identity header that is the running upstream
   * credential header): the file alone was valid, the mix is not; the reload is refused.
   */
  readonly problems: readonly ConfigProblem[];
}

/** Compares the running config with a valid new one and says what a reload would do. */
export function planReload(running: Readonly<Config>, next: Readonly<Config>): ReloadPlan {
  const changed = diffPaths(running, next, '');
  const applied: string[] = [];
  const needsRestart: string[] = [];
  for (const path of changed) {
    (isReloadable(path) ? applied : needsRestart).push(userPath(path));
  }
  const effective = overlay(running, next);
  return { effective, applied, needsRestart, problems: combinationProblems(effective) };
}

function isReloadable(path: string): boolean {
  return RELOADABLE_PATHS.some(
    (p) => path === p || path.startsWith(`${p}.`) || path.startsWith(`${p}[`),
  );
}

/** The running config with every reloadable field taken from `next`. */
function overlay(running: Readonly<Config>, next: Readonly<Config>): Readonly<Config> {
  const upstream =
    // upstream itself (present or not) needs a restart; only its per-request fields move.
    running.upstream === undefined || next.upstream === undefined
      ? running.upstream
      : withStripPrefix(
          { ...running.upstream, dropHeaders: next.upstream.dropHeaders },
          next.upstream.stripPrefix,
        );
  return deepFreeze({
    ...running,
    routes: next.routes,
    roles: next.roles,
    identityHeaders: next.identityHeaders,
    trustedProxies: next.trustedProxies,
    upstream,
    authz: { ...running.authz, cacheTtlMs: next.authz.cacheTtlMs },
    listen: {
      ...running.listen,
      maxInflightPerAccount: next.listen.maxInflightPerAccount,
      bodyIdleTimeoutMs: next.listen.bodyIdleTimeoutMs,
    },
    log: { ...running.log, level: next.log.level },
    rateLimits: next.rateLimits,
    rateLimitStoreDown: next.rateLimitStoreDown,
  });
}

type UpstreamConfig = NonNullable<Config['upstream']>;

/** exactOptionalPropertyTypes: an absent stripPrefix is left out, never set to undefined. */
function withStripPrefix(
  upstream: UpstreamConfig,
  stripPrefix: string | undefined,
): UpstreamConfig {
  const { stripPrefix: _old, ...rest } = upstream;
  return stripPrefix === undefined ? rest : { ...rest, stripPrefix };
}

/**
 * The schema's cross-field checks that can span a reloadable and a restart-only field: the
 * new identity headers against the running upstream credential header (keygate would set both,
 * and one would replace the other upstream). Routes against roles need no check here: both
 * come from the same, already validated, file.
 */
function combinationProblems(config: Readonly<Config>): ConfigProblem[] {
  const credential = config.upstream?.credential;
  if (credential === undefined) return [];
  const problems: ConfigProblem[] = [];
  for (const field of ['account', 'keyId', 'role'] as const) {
    const name = config.identityHeaders[field];
    if (canonicalHeaderName(name) === canonicalHeaderName(credential.header)) {
      problems.push({
        path: `identityHeaders.${field}`,
        message: `"${name}" is the running upstream credential header (upstream.credential.header needs a restart to change)`,
      });
    }
  }
  return problems;
}

/**
 * Leaf paths where two validated configs differ. Arrays and records compare element by
 * element; a value present on one side only is a difference at its own path.
 */
export function diffPaths(a: unknown, b: unknown, path: string): string[] {
  if (Object.is(a, b)) return [];
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    const out: string[] = [];
    for (const key of keys) {
      const childA = Object.hasOwn(a, key) ? (a as Record<string, unknown>)[key] : undefined; // own-key: checked by hasOwn
      const childB = Object.hasOwn(b, key) ? (b as Record<string, unknown>)[key] : undefined; // own-key: checked by hasOwn
      out.push(...diffPaths(childA, childB, path === '' ? key : `${path}.${key}`));
    }
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    // A route list is one policy: report it as a whole when its length changes, else by index.
    if (a.length !== b.length) return [path];
    return a.flatMap((item, i) => diffPaths(item, b[i], `${path}[${i}]`));
  }
  return [path];
}

function isPlainObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The path as written in the file: the schema renames durations ("cacheTtl" → "cacheTtlMs")
 * and no key the user writes ends in "Ms", so the suffix is dropped from each segment.
 */
export function userPath(path: string): string {
  return path.replace(/Ms(?=$|[.[])/g, '');
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
