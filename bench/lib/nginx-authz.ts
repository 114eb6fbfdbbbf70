import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from './measure.js';
import { ROOT } from './measure.js';
import { startNginxWith } from './nginx.js';

/**
 * nginx in front of the fixed upstream asking keygate (authz mode) with the SHIPPED snippet,
 * as an operator copies it: deploy/authz/nginx/keygate-authz.conf, or with `cache` the caching
 * one (keygate-authz-cache.conf and its njs key). The same nginx as the `map` baseline
 * (bench/lib/nginx.ts): one worker, keep-alive to the upstream, /model stripped, buffered
 * access log; keygate is reached through a keep-alive upstream block too, as a deployment
 * would.
 */
export async function startNginxAuthz(
  dir: string,
  upstreamPort: number,
  keygatePort: number,
  cache: boolean,
  /**
   * The caching snippet's key builder: 'set-misc' as shipped, 'njs' its documented alternative,
   * 'raw' the credential itself as nginx's cache key (a comparison only: never shipped).
   */
  cacheKey: 'set-misc' | 'njs' | 'raw' = 'set-misc',
): Promise<Server> {
  mkdirSync(dir, { recursive: true });
  const file = cache ? 'keygate-authz-cache.conf' : 'keygate-authz.conf';
  const snippet = readFileSync(join(ROOT, 'deploy/authz/nginx', file), 'utf8');
  const commented = (from: string, to: string) => {
    const start = snippet.indexOf(from);
    const end = to === '' ? snippet.length : snippet.indexOf(to, start);
    if (start === -1 || end === -1) throw new Error(`${file}: no section "${from}"`);
    return snippet
      .slice(start, end)
      .split('\n')
      .filter((l) => l.startsWith('#   '))
      .map((l) => l.slice(4))
      .join('\n');
  };
  // On tmpfs, as the snippet ships (a disk-backed cache directory costs more per hit).
  const cacheDir = existsSync('/dev/shm')
    ? mkdtempSync('/dev/shm/keygate-bench-authz-')
    : join(dir, 'authz-cache');
  const fill = (text: string) =>
    text
      .replaceAll('KEYGATE', 'keygate_authz')
      .replaceAll(
        '/etc/nginx/keygate-authz-cache-key.js',
        join(ROOT, 'deploy/authz/nginx/keygate-authz-cache-key.js'),
      )
      .replaceAll('/dev/shm/keygate-authz', cacheDir);
  let authLocation = snippet.slice(
    snippet.indexOf('location = /_keygate_authz'),
    snippet.indexOf('# protected location'),
  );
  // njs and raw: without the two set_* lines of the shipped auth location.
  if (cache && cacheKey !== 'set-misc') {
    const setLines = authLocation.split('\n').filter((l) => /^\s*set_[a-z0-9_]+ /.test(l));
    if (setLines.length !== 2) throw new Error(`${file}: expected the two set_* key lines`);
    for (const line of setLines) authLocation = authLocation.replace(`${line}\n`, '');
  }
  if (cacheKey === 'raw') {
    const swaps: Array<[string, string]> = [
      [
        'proxy_cache_key "keygate-authz:$keygate_cache_key";',
        'proxy_cache_key "keygate-authz:$request_method $request_uri $http_x_api_key $http_authorization";',
      ],
      ['proxy_cache_bypass $keygate_cache_off;', ''],
      [
        'proxy_no_cache $keygate_cache_off $keygate_not_allowed;',
        'proxy_no_cache $keygate_not_allowed;',
      ],
    ];
    for (const [from, to] of swaps) {
      if (!authLocation.includes(from)) throw new Error(`${file}: no "${from}" to swap`);
      authLocation = authLocation.replace(from, to);
    }
  }
  // The protected block as shipped (on /model/, stripping it like the baseline), with the
  // baseline's upstream settings. A snippet that no longer has these lines fails here rather
  // than silently benchmarking another nginx (keep-alive to the upstream matters: ~2× CPU).
  const shipped = commented('# protected location', '');
  const upstreamLine = 'proxy_pass http://AGGREGATOR/;';
  if (!shipped.includes('location /model/ {') || !shipped.includes(upstreamLine)) {
    throw new Error(`${file}: the protected location is not the one this bench expects`);
  }
  const protectedLocation = shipped.replace(
    upstreamLine,
    `proxy_pass http://aggregator/;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;`,
  );
  const http = [
    `  upstream keygate_authz { server 127.0.0.1:${keygatePort}; keepalive 64; }`,
    cache
      ? fill(commented('# In http { }', '# Without set-misc'))
          .split('\n')
          // raw has no $keygate_cache_key at all (nor its "no key" map).
          .filter((l) => cacheKey !== 'raw' || !l.includes('$keygate_cache_key'))
          .join('\n')
      : '',
    cache && cacheKey === 'njs' ? fill(commented('# Without set-misc', '# It hashes')) : '',
  ].join('\n');
  const server = await startNginxWith(
    dir,
    upstreamPort,
    http,
    fill(`${authLocation}\n${protectedLocation}`),
    !cache || cacheKey === 'raw'
      ? ''
      : cacheKey === 'njs'
        ? 'load_module /usr/lib/nginx/modules/ngx_http_js_module.so;'
        : commented('# Needs the set-misc module', '# In http { }'),
  );
  return {
    ...server,
    stop: async () => {
      await server.stop();
      rmSync(cacheDir, { recursive: true, force: true });
    },
  };
}
