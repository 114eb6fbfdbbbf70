import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { ENVOY_HEADERS_TO_REMOVE } from '../../../src/authz/authz-target.js';
import { type Schema, validateSchema } from '../../helpers/crd-schema.js';
import { type ProtoTable, walkMessage } from '../../helpers/proto-fields.js';

/**
 * The shipped Traefik, Envoy and Istio configs (deploy/authz/), which cannot run in CI, checked
 * against what their projects publish (vendored in test/fixtures/schemas/ with repo and commit):
 * Traefik's and Istio's CRD schemas, Envoy's and Istio's .proto field lists. Then what they must
 * guarantee: ask /_keygate/authz, fail closed, send keygate the credential, strip it before the
 * Aggregator, take exactly keygate's three identity headers. Each check is shown to fail on a
 * mutated config.
 */

const root = new URL('../../../', import.meta.url);
const text = (path: string) => readFileSync(new URL(path, root), 'utf8');
const clone = <T>(v: T): T => structuredClone(v);

const KEYGATE = 'keygate.keygate.svc.cluster.local';
const IDENTITY = ['x-keygate-account', 'x-keygate-key-id', 'x-keygate-role'];
const CREDENTIALS = ['x-api-key', 'authorization'];
const lower = (names: readonly string[]) => names.map((n) => n.toLowerCase()).sort();

interface CrdFixture {
  readonly group: string;
  readonly kind: string;
  readonly version: string;
  readonly schema: Schema;
}
const crd = (file: string) => parse(text(`test/fixtures/schemas/${file}`)) as CrdFixture;

/**
 * Schema errors of a manifest, plus apiVersion/kind matching the CRD. The API server itself owns
 * apiVersion, kind and metadata; Istio's generated schemas leave them out, so there only the
 * rest is held to the CRD's schema. metadata must at least name the object.
 */
function crdErrors(fixture: CrdFixture, doc: Record<string, unknown>): string[] {
  const { apiVersion: _v, kind: _k, metadata, ...rest } = doc;
  const owned = fixture.schema.properties?.metadata !== undefined;
  const errors = validateSchema(fixture.schema, owned ? doc : rest);
  if (typeof (metadata as { name?: unknown } | undefined)?.name !== 'string') {
    errors.push('metadata.name is required');
  }
  if (doc.apiVersion !== `${fixture.group}/${fixture.version}`) errors.push('wrong apiVersion');
  if (doc.kind !== fixture.kind) errors.push('wrong kind');
  return errors;
}

// biome-ignore lint/suspicious/noExplicitAny: walking parsed YAML in assertions
type Doc = any;

// ---------------------------------------------------------------- Traefik
const traefikDocs = parseAllDocuments(text('deploy/authz/traefik/middleware.yaml')).map(
  (d) => d.toJS() as Doc,
);
const middleware = traefikDocs.find((d) => d.kind === 'Middleware' && d.spec.forwardAuth);
const stripModel = traefikDocs.find((d) => d.kind === 'Middleware' && d.spec.stripPrefix);
const ingressRoute = traefikDocs.find((d) => d.kind === 'IngressRoute');
const middlewareCrd = crd('traefik-middleware.crd.yaml');
const ingressRouteCrd = crd('traefik-ingressroute.crd.yaml');

/** Go regexp `(?i)…` as a JS RegExp (the only flag syntax the shipped regex uses). */
function goRegex(re: string): RegExp {
  return re.startsWith('(?i)') ? new RegExp(re.slice(4), 'i') : new RegExp(re);
}

function traefikGuarantees(mw: Doc, route: Doc): string[] {
  const errors: string[] = [];
  const fa = mw.spec.forwardAuth;
  if (fa.address !== `http://${KEYGATE}:8080/_keygate/authz`) errors.push('address');
  if (fa.trustForwardHeader !== false) errors.push('trustForwardHeader must be false');
  if (fa.forwardBody === true) errors.push('forwardBody');
  if (lower(fa.authRequestHeaders ?? []).join() !== lower(CREDENTIALS).join()) {
    errors.push('authRequestHeaders must be exactly the credential headers');
  }
  // Identity: keygate's three; credential: listed so forward.go deletes it after the check.
  if (lower(fa.authResponseHeaders).join() !== lower([...IDENTITY, ...CREDENTIALS]).join()) {
    errors.push('authResponseHeaders must be the identity and the credential headers');
  }
  const re = goRegex(fa.authResponseHeadersRegex ?? '(?!)');
  // Go's canonical spellings of client headers the regex must delete…
  for (const h of ['X_keygate_account', 'X-Keygate_role', 'X_keygate_key_id', 'X_api_key']) {
    if (!re.test(h)) errors.push(`regex keeps ${h}`);
  }
  // …and what it must not touch (it copies matching names from keygate's answer too).
  for (const h of ['X-Keygate', 'Content-Type', 'X-Request-Id', 'X-Api-Keys', 'Xx-Keygate-Role']) {
    if (re.test(h)) errors.push(`regex matches ${h}`);
  }
  const used = route.spec.routes.flatMap((r: Doc) => r.middlewares ?? []);
  if (
    !used.some((m: Doc) => m.name === mw.metadata.name && m.namespace === mw.metadata.namespace)
  ) {
    errors.push('the IngressRoute does not use the middleware');
  }
  return errors;
}

describe('Traefik forwardAuth (deploy/authz/traefik/middleware.yaml)', () => {
  it('Middleware and IngressRoute fit Traefik’s published CRD schemas', () => {
    expect(traefikDocs).toHaveLength(3);
    expect(crdErrors(middlewareCrd, middleware)).toEqual([]);
    expect(crdErrors(middlewareCrd, stripModel)).toEqual([]);
    expect(crdErrors(ingressRouteCrd, ingressRoute)).toEqual([]);
  });

  it('asks /_keygate/authz, closed, credential in and stripped, identity only from keygate', () => {
    expect(traefikGuarantees(middleware, ingressRoute)).toEqual([]);
  });

  it('keygate judges /model/… and only then is /model stripped for the Aggregator', () => {
    expect(stripModel.spec.stripPrefix.prefixes).toEqual(['/model']);
    const route = ingressRoute.spec.routes[0];
    expect(route.match).toContain('PathPrefix(`/model/`)');
    // Middlewares run in list order: the strip must come after the authz question.
    expect(route.middlewares.map((m: Doc) => m.name)).toEqual([
      middleware.metadata.name,
      stripModel.metadata.name,
    ]);
  });

  it('fails on a misspelled field, a wrong type, another middleware kind', () => {
    const typo = clone(middleware);
    typo.spec.forwardAuth.trustForwardHeaders = false;
    expect(crdErrors(middlewareCrd, typo)).toContain(
      '$.spec.forwardAuth: unknown field trustForwardHeaders',
    );
    const wrongType = clone(middleware);
    wrongType.spec.forwardAuth.authResponseHeaders = 'X-Keygate-Account';
    expect(crdErrors(middlewareCrd, wrongType).join()).toMatch(
      /authResponseHeaders: must be of type array/,
    );
    const other = clone(middleware);
    other.spec.basicAuth = {};
    expect(crdErrors(middlewareCrd, other).join()).toMatch(/unknown field basicAuth/);
    const route = clone(ingressRoute);
    delete route.spec.routes[0].match;
    expect(crdErrors(ingressRouteCrd, route).join()).toMatch(/missing required field match/);
  });

  it('fails when the credential is no longer stripped, or the check can be bypassed', () => {
    const keep = clone(middleware);
    keep.spec.forwardAuth.authResponseHeaders = [
      'X-Keygate-Account',
      'X-Keygate-Key-Id',
      'X-Keygate-Role',
    ];
    expect(traefikGuarantees(keep, ingressRoute)).toContain(
      'authResponseHeaders must be the identity and the credential headers',
    );
    const trust = clone(middleware);
    trust.spec.forwardAuth.trustForwardHeader = true;
    expect(traefikGuarantees(trust, ingressRoute)).toContain('trustForwardHeader must be false');
    const noRegex = clone(middleware);
    delete noRegex.spec.forwardAuth.authResponseHeadersRegex;
    expect(traefikGuarantees(noRegex, ingressRoute)).toContain('regex keeps X_keygate_account');
    const elsewhere = clone(middleware);
    elsewhere.spec.forwardAuth.address = `http://${KEYGATE}:8080/_keygate/v1/authz`;
    expect(traefikGuarantees(elsewhere, ingressRoute)).toContain('address');
    const unused = clone(ingressRoute);
    unused.spec.routes[0].middlewares = [];
    expect(traefikGuarantees(middleware, unused)).toContain(
      'the IngressRoute does not use the middleware',
    );
  });
});

// ---------------------------------------------------------------- Envoy
const envoyFields = JSON.parse(text('test/fixtures/schemas/envoy-fields.json')) as ProtoTable;
const EXTENSIONS = new Map([
  [
    'envoy.filters.network.http_connection_manager',
    'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  ],
  ['envoy.filters.http.ext_authz', 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz'],
  ['envoy.filters.http.router', 'envoy.extensions.filters.http.router.v3.Router'],
]);
const envoy: Doc = parse(text('deploy/authz/envoy/envoy.yaml'));
const envoyErrors = (doc: Doc) =>
  walkMessage(envoyFields, 'envoy.config.bootstrap.v3.Bootstrap', doc, {
    names: 'proto',
    extensions: EXTENSIONS,
  });

const hcmOf = (doc: Doc) =>
  doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
const authzOf = (doc: Doc) =>
  hcmOf(doc).http_filters.find((f: Doc) => f.name === 'envoy.filters.http.ext_authz')?.typed_config;
const exact = (list: Doc) => lower((list?.patterns ?? []).map((p: Doc) => p.exact));

function envoyGuarantees(doc: Doc): string[] {
  const errors: string[] = [];
  const hcm = hcmOf(doc);
  const names = hcm.http_filters.map((f: Doc) => f.name);
  if (
    names.indexOf('envoy.filters.http.ext_authz') !== 0 ||
    names.at(-1) !== 'envoy.filters.http.router'
  ) {
    errors.push('ext_authz must run first, the router last');
  }
  const authz = authzOf(doc);
  if (authz?.failure_mode_allow !== false) errors.push('failure_mode_allow must be false');
  const onError = authz?.status_on_error?.code;
  if (!['ServiceUnavailable', 'InternalServerError', 'BadGateway'].includes(onError)) {
    errors.push('status_on_error must be a 5xx');
  }
  const http = authz?.http_service;
  if (http?.path_prefix !== '/_keygate/authz') errors.push('path_prefix');
  const cluster = doc.static_resources.clusters.find(
    (c: Doc) => c.name === http?.server_uri?.cluster,
  );
  const addr =
    cluster?.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
  if (addr?.address !== KEYGATE || addr?.port_value !== 8080) errors.push('keygate cluster');
  for (const c of CREDENTIALS) {
    if (!exact(authz?.allowed_headers).includes(c)) errors.push(`${c} not sent to keygate`);
  }
  if (exact(http?.authorization_response?.allowed_upstream_headers).join() !== IDENTITY.join()) {
    errors.push('upstream headers must be exactly keygate’s identity headers');
  }
  if (http?.authorization_response?.allowed_upstream_headers_to_append !== undefined) {
    errors.push('identity must replace, never append');
  }
  if (hcm.common_http_protocol_options?.headers_with_underscores_action !== 'DROP_HEADER') {
    errors.push('"_" headers must be dropped');
  }
  for (const vh of hcm.route_config.virtual_hosts) {
    for (const route of vh.routes) {
      const removed = lower(route.request_headers_to_remove ?? []);
      for (const c of CREDENTIALS) if (!removed.includes(c)) errors.push(`route keeps ${c}`);
      // The router runs after ext_authz: removing identity there would drop keygate's own.
      if (removed.some((h) => h.startsWith('x-keygate-'))) errors.push('route removes identity');
      // keygate's routes name /model/…; the Aggregator serves them without it.
      if (route.match?.prefix !== '/model/' || route.route?.prefix_rewrite !== '/') {
        errors.push('route must send /model/… to the Aggregator as /…');
      }
    }
  }
  return errors;
}

describe('Envoy ext_authz (deploy/authz/envoy/envoy.yaml)', () => {
  it('every field is a field of its message in Envoy’s .proto files; typed_config @types match', () => {
    expect(envoyErrors(envoy)).toEqual([]);
  });

  it('asks /_keygate/authz, closed, credential in and stripped twice, identity only from keygate', () => {
    expect(envoyGuarantees(envoy)).toEqual([]);
    // keygate's allow names exactly the credential headers for Envoy to remove.
    expect(lower(ENVOY_HEADERS_TO_REMOVE.split(',').map((s) => s.trim()))).toEqual(
      lower(CREDENTIALS),
    );
  });

  it('fails on a misspelled field, a wrong @type, a deprecated field, a bad enum, two of a oneof', () => {
    const typo = clone(envoy);
    authzOf(typo).failure_mode_alow = false;
    expect(envoyErrors(typo).join()).toMatch(/unknown field failure_mode_alow in .*ExtAuthz/);
    const wrongAny = clone(envoy);
    authzOf(wrongAny)['@type'] =
      'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
    expect(envoyErrors(wrongAny).join()).toMatch(/@type .*Router is not the expected .*ExtAuthz/);
    const deprecated = clone(envoy);
    deprecated.static_resources.clusters[0].max_requests_per_connection = 1;
    expect(envoyErrors(deprecated).join()).toMatch(/deprecated field/);
    const badEnum = clone(envoy);
    hcmOf(badEnum).common_http_protocol_options.headers_with_underscores_action = 'DROP';
    expect(envoyErrors(badEnum).join()).toMatch(/must be one of/);
    const twoOneof = clone(envoy);
    authzOf(twoOneof).grpc_service = {};
    expect(envoyErrors(twoOneof).join()).toMatch(/oneof services already set/);
    const duration = clone(envoy);
    authzOf(duration).http_service.server_uri.timeout = 5;
    expect(envoyErrors(duration).join()).toMatch(/not a duration/);
  });

  it('fails open, on another path, without x-api-key, keeping the key, or removing identity', () => {
    const cases: [(d: Doc) => void, string][] = [
      [
        (d) => {
          authzOf(d).failure_mode_allow = true;
        },
        'failure_mode_allow must be false',
      ],
      [
        (d) => {
          delete authzOf(d).failure_mode_allow;
        },
        'failure_mode_allow must be false',
      ],
      [
        (d) => {
          authzOf(d).http_service.path_prefix = '/authz';
        },
        'path_prefix',
      ],
      [
        (d) => {
          authzOf(d).allowed_headers.patterns.shift();
        },
        'x-api-key not sent to keygate',
      ],
      [
        (d) => {
          hcmOf(d).route_config.virtual_hosts[0].routes[0].request_headers_to_remove = [];
        },
        'route keeps x-api-key',
      ],
      [
        (d) => {
          hcmOf(d).route_config.virtual_hosts[0].routes[0].request_headers_to_remove.push(
            'x-keygate-role',
          );
        },
        'route removes identity',
      ],
      [
        (d) => {
          authzOf(d).http_service.authorization_response.allowed_upstream_headers.patterns.push({
            exact: 'x-keygate-admin',
          });
        },
        'upstream headers must be exactly keygate’s identity headers',
      ],
      [
        (d) => {
          hcmOf(d).http_filters.reverse();
        },
        'ext_authz must run first, the router last',
      ],
      [
        (d) => {
          delete hcmOf(d).common_http_protocol_options;
        },
        '"_" headers must be dropped',
      ],
    ];
    for (const [mutate, error] of cases) {
      const doc = clone(envoy);
      mutate(doc);
      expect(envoyGuarantees(doc)).toContain(error);
    }
  });
});

// ---------------------------------------------------------------- Istio
const istioFields = JSON.parse(
  text('test/fixtures/schemas/istio-extension-provider-fields.json'),
) as ProtoTable;
const policyCrd = crd('istio-authorizationpolicy.crd.yaml');
const operator: Doc = parse(text('deploy/authz/istio/extension-provider.yaml'));
const policy: Doc = parse(text('deploy/authz/istio/authorization-policy.yaml'));

function providerErrors(doc: Doc): string[] {
  const errors: string[] = [];
  if (doc.apiVersion !== 'install.istio.io/v1alpha1' || doc.kind !== 'IstioOperator')
    errors.push('kind');
  if (Object.keys(doc.spec).join() !== 'meshConfig') errors.push('spec holds only meshConfig');
  if (Object.keys(doc.spec.meshConfig).join() !== 'extensionProviders') errors.push('meshConfig');
  for (const p of doc.spec.meshConfig.extensionProviders) {
    errors.push(
      ...walkMessage(istioFields, 'istio.mesh.v1alpha1.MeshConfig.ExtensionProvider', p, {
        names: 'json',
      }),
    );
  }
  return errors;
}

function istioGuarantees(op: Doc, pol: Doc): string[] {
  const errors: string[] = [];
  const provider = op.spec.meshConfig.extensionProviders.find(
    (p: Doc) => p.name === pol.spec.provider?.name,
  );
  if (pol.spec.action !== 'CUSTOM' || provider === undefined)
    errors.push('policy must be CUSTOM with our provider');
  const http = provider?.envoyExtAuthzHttp ?? {};
  if (http.service !== KEYGATE || http.port !== 8080) errors.push('service');
  if (http.pathPrefix !== '/_keygate/authz') errors.push('pathPrefix');
  if (http.failOpen !== false) errors.push('failOpen must be false');
  if (!/^5\d\d$/.test(http.statusOnError ?? '')) errors.push('statusOnError must be a 5xx');
  if (lower(http.includeRequestHeadersInCheck ?? []).join() !== lower(CREDENTIALS).join()) {
    errors.push('the credential headers must be sent to keygate');
  }
  if (lower(http.headersToUpstreamOnAllow ?? []).join() !== IDENTITY.join()) {
    errors.push('upstream headers must be exactly keygate’s identity headers');
  }
  if (!lower(http.headersToDownstreamOnDeny ?? ['content-type']).includes('content-type')) {
    errors.push('a refusal must keep its JSON content-type');
  }
  if (pol.spec.selector?.matchLabels === undefined) errors.push('policy must select a workload');
  return errors;
}

describe('Istio (deploy/authz/istio/)', () => {
  it('the provider fits MeshConfig.ExtensionProvider of istio/api; the policy the CRD schema', () => {
    expect(providerErrors(operator)).toEqual([]);
    expect(crdErrors(policyCrd, policy)).toEqual([]);
  });

  it('CUSTOM policy on our provider, /_keygate/authz, closed, credential in, identity exactly keygate’s', () => {
    expect(istioGuarantees(operator, policy)).toEqual([]);
  });

  it('fails on a misspelled or deprecated provider field and a bad policy', () => {
    const typo = clone(operator);
    typo.spec.meshConfig.extensionProviders[0].envoyExtAuthzHttp.failopen = false;
    expect(providerErrors(typo).join()).toMatch(/unknown field failopen/);
    const old = clone(operator);
    old.spec.meshConfig.extensionProviders[0].envoyExtAuthzHttp.includeHeadersInCheck = [
      'x-api-key',
    ];
    expect(providerErrors(old).join()).toMatch(/deprecated field/);
    const two = clone(operator);
    two.spec.meshConfig.extensionProviders[0].envoyExtAuthzGrpc = { service: KEYGATE, port: 8080 };
    expect(providerErrors(two).join()).toMatch(/oneof provider already set/);
    const badAction = clone(policy);
    badAction.spec.action = 'EXTERNAL';
    expect(crdErrors(policyCrd, badAction).join()).toMatch(/must be one of/);
    const badField = clone(policy);
    badField.spec.providers = badField.spec.provider;
    expect(crdErrors(policyCrd, badField).join()).toMatch(/unknown field providers/);
  });

  it('fails open, on another path, without the credential, or with another policy action', () => {
    const cases: [(op: Doc, pol: Doc) => void, string][] = [
      [
        (op) => {
          op.spec.meshConfig.extensionProviders[0].envoyExtAuthzHttp.failOpen = true;
        },
        'failOpen must be false',
      ],
      [
        (op) => {
          delete op.spec.meshConfig.extensionProviders[0].envoyExtAuthzHttp.failOpen;
        },
        'failOpen must be false',
      ],
      [
        (op) => {
          op.spec.meshConfig.extensionProviders[0].envoyExtAuthzHttp.pathPrefix = '/check';
        },
        'pathPrefix',
      ],
      [
        (op) => {
          op.spec.meshConfig.extensionProviders[0].envoyExtAuthzHttp.includeRequestHeadersInCheck =
            ['authorization'];
        },
        'the credential headers must be sent to keygate',
      ],
      [
        (op) => {
          op.spec.meshConfig.extensionProviders[0].envoyExtAuthzHttp.headersToUpstreamOnAllow = [
            'x-keygate-*',
          ];
        },
        'upstream headers must be exactly keygate’s identity headers',
      ],
      [
        (_, pol) => {
          pol.spec.action = 'ALLOW';
        },
        'policy must be CUSTOM with our provider',
      ],
      [
        (_, pol) => {
          pol.spec.provider.name = 'other';
        },
        'policy must be CUSTOM with our provider',
      ],
    ];
    for (const [mutate, error] of cases) {
      const op = clone(operator);
      const pol = clone(policy);
      mutate(op, pol);
      expect(istioGuarantees(op, pol)).toContain(error);
    }
  });
});
