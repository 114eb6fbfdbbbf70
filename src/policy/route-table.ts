import type { HttpMethod, RouteConfig } from '../config/schema.js';
import { KeygateError } from '../errors.js';
import type { Principal } from '../keys/principal.js';
import type { FilterKind } from './filter-kinds.js';

export interface Route {
  readonly name: string;
  readonly methods: ReadonlySet<string>;
  readonly scopes: readonly string[];
  readonly pattern: string;
  /** The kind of data the route serves (config `filter`), for filtered accounts. */
  readonly filter: FilterKind | undefined;
  matches(path: string): boolean;
}

/** Compiles `/a/b` (exact), `/a/*` (exactly one more segment), `/a/**` (`/a` and below). */
export function compilePattern(pattern: string): (path: string) => boolean {
  if (pattern.endsWith('/**')) {
    const base = pattern.slice(0, -3);
    const prefix = `${base}/`;
    const baseMatches = compilePattern(base || '/');
    return (path) => (path.startsWith(prefix) && path.length > prefix.length) || baseMatches(path);
  }
  if (!pattern.includes('*')) return (path) => path === pattern;
  const expected = pattern.split('/');
  return (path) => {
    const actual = path.split('/');
    if (actual.length !== expected.length) return false;
    for (let i = 0; i < expected.length; i++) {
      const want = expected[i];
      const got = actual[i] as string;
      if (want === '*' ? got === '' : want !== got) return false;
    }
    return true;
  };
}

/** Ordered route rules; the first whose method and path both match decides. */
export class RouteTable {
  private readonly routes: readonly Route[];

  constructor(config: readonly RouteConfig[]) {
    this.routes = config.map((r) => {
      const methods = new Set<string>(r.methods);
      // HEAD is a GET without a body: where GET is allowed, so is HEAD.
      if (methods.has('GET')) methods.add('HEAD');
      return {
        name: r.name,
        methods,
        scopes: r.scopes,
        pattern: r.path,
        filter: r.filter,
        matches: compilePattern(r.path),
      };
    });
  }

  match(method: string, path: string): Route | undefined {
    for (const route of this.routes) {
      if (route.methods.has(method) && route.matches(path)) return route;
    }
    return undefined;
  }

  /** Deny by default: no rule → route_not_allowed. */
  require(method: string, path: string): Route {
    const route = this.match(method, path);
    if (route === undefined) {
      throw new KeygateError(
        'route_not_allowed',
        `no route allows ${method as HttpMethod} on this path`,
      );
    }
    return route;
  }

  /** A rule the key's scopes don't cover → insufficient_scope. */
  checkScopes(principal: Principal, route: Route): void {
    const missing = route.scopes.filter((s) => !principal.scopes.has(s));
    if (missing.length > 0) {
      throw new KeygateError(
        'insufficient_scope',
        `route "${route.name}" needs scope ${missing.join(', ')}, which this key does not have`,
      );
    }
  }
}
