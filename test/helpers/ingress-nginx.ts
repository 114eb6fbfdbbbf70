import { parse } from 'yaml';

/**
 * The nginx that ingress-nginx renders for one Ingress path with external auth, rebuilt from
 * its template so a real nginx can run it: kubernetes/ingress-nginx@dbb11b92,
 * rootfs/etc/nginx/template/nginx.tmpl (the `location = $authPath` block and the protected
 * location's `auth_request` branch) and template.go (buildAuthResponseHeaders, buildProxyPass,
 * buildLocation). Controller-wide defaults are ingress-nginx's: proxy_buffering off, 4k
 * buffers, HTTP/1.1, 1m body, X-Forwarded-For $remote_addr, underscores dropped.
 *
 * Only what the shipped Ingress uses is supported; anything else is an error, not a silent
 * approximation. Snippet annotations are refused outright: the shipped Ingress must work
 * with `allow-snippet-annotations: false`.
 */
export interface IngressNginxTargets {
  /** host:port that replaces the auth-url's authority (keygate). */
  keygate: string;
  /** host:port of the Aggregator (the Ingress backend). */
  aggregator: string;
}

const PREFIX = 'nginx.ingress.kubernetes.io/';
const SUPPORTED = new Set([
  'auth-url',
  'auth-response-headers',
  'use-regex',
  'rewrite-target',
  'proxy-read-timeout',
]);
// ingress-nginx's own check for auth-response-headers names (authreq/main.go headerRegexp).
const HEADER_NAME = /^[a-zA-Z\d\-_]+$/;

interface IngressDoc {
  metadata?: { annotations?: Record<string, string> };
  spec?: { rules?: Array<{ http?: { paths?: Array<{ path?: string; pathType?: string }> } }> };
}

export function ingressNginxServerBlock(yamlText: string, targets: IngressNginxTargets): string {
  const doc = parse(yamlText) as IngressDoc;
  const annotations = new Map<string, string>();
  for (const [name, value] of Object.entries(doc.metadata?.annotations ?? {})) {
    if (!name.startsWith(PREFIX)) throw new Error(`not an ingress-nginx annotation: ${name}`);
    const short = name.slice(PREFIX.length);
    if (short.endsWith('snippet')) throw new Error(`snippet annotation ${name} is not allowed`);
    if (!SUPPORTED.has(short)) throw new Error(`annotation ${name} is not modelled here`);
    annotations.set(short, value);
  }
  const authUrl = new URL(annotations.get('auth-url') ?? '');
  const responseHeaders = (annotations.get('auth-response-headers') ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
  for (const h of responseHeaders) {
    if (!HEADER_NAME.test(h)) throw new Error(`ingress-nginx refuses header name ${h}`);
  }
  const paths = doc.spec?.rules?.[0]?.http?.paths ?? [];
  if (paths.length !== 1) throw new Error('expected one Ingress path');
  const path = paths[0]?.path ?? '/';
  const regex = annotations.get('use-regex') === 'true' || annotations.has('rewrite-target');
  const rewrite = annotations.get('rewrite-target');
  const readTimeout = annotations.get('proxy-read-timeout') ?? '60';
  const keygateUrl = `${authUrl.protocol}//${targets.keygate}${authUrl.pathname}${authUrl.search}`;
  const authPath = '/_external-auth-keygate-test';

  const setLines = responseHeaders.flatMap((h, i) => [
    `auth_request_set $authHeader${i} $upstream_http_${h.toLowerCase().replaceAll('-', '_')};`,
    `proxy_set_header '${h}' $authHeader${i};`,
  ]);
  return `
    location = ${authPath} {
      internal;
      access_log off;
      proxy_intercept_errors      off;
      proxy_pass_request_body     off;
      proxy_set_header            Content-Length          "";
      proxy_set_header            X-Forwarded-Proto       "";
      proxy_set_header            X-Request-ID            $request_id;
      proxy_set_header            Host                    ${authUrl.host};
      proxy_set_header            X-Original-URL          $scheme://$http_host$request_uri;
      proxy_set_header            X-Original-Method       $request_method;
      proxy_set_header            X-Sent-From             "nginx-ingress-controller";
      proxy_set_header            X-Real-IP               $remote_addr;
      proxy_set_header            X-Forwarded-For         $remote_addr;
      proxy_set_header            X-Auth-Request-Redirect $request_uri;
      proxy_buffering             off;
      proxy_buffer_size           4k;
      proxy_buffers               4 4k;
      proxy_request_buffering     on;
      proxy_ssl_server_name       on;
      proxy_pass_request_headers  on;
      client_max_body_size        1m;
      proxy_http_version          1.1;
      set $target "${keygateUrl}";
      proxy_pass $target;
    }

    location ${regex ? `~* "^${path}"` : path} {
      auth_request        ${authPath};
      auth_request_set    $auth_cookie $upstream_http_set_cookie;
      add_header          Set-Cookie $auth_cookie;
      ${setLines.join('\n      ')}
      proxy_set_header Host $host;
      proxy_set_header X-Request-ID $request_id;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Scheme $scheme;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header Proxy "";
      proxy_http_version 1.1;
      proxy_read_timeout ${readTimeout}s;
      ${rewrite !== undefined ? `rewrite "(?i)${path}" ${rewrite} break;` : ''}
      proxy_pass http://${targets.aggregator};
    }
`;
}
