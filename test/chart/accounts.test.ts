import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { assertHelm } from '../helpers/helm.js';
import { validateK8sObject } from '../helpers/k8s-validate.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CHART = join(ROOT, 'helm/keygate');
const dir = mkdtempSync(join(tmpdir(), 'kg-accounts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Container = {
  name: string;
  args: string[];
  image: string;
  env: unknown[];
  volumeMounts: Array<{ name: string; mountPath: string }>;
  securityContext: unknown;
};
type Volume = {
  name: string;
  configMap?: { name: string };
  projected?: {
    sources: Array<{
      configMap: { name: string; items?: Array<{ key: string; path: string }> };
    }>;
  };
};
type PodSpec = { initContainers?: Container[]; containers: Container[]; volumes: Volume[] };
type K8sObject = {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: { template?: { metadata: { annotations: Record<string, string> }; spec: PodSpec } };
};

const HASH =
  '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g';
const ACCOUNTS = [
  {
    name: 'ci-nightly',
    role: 'reader',
    description: 'nightly cost report',
    keys: [{ id: 'AbCdEf123456', hash: HASH, description: 'nightly job', expires_at: 1798761600 }],
  },
  { name: 'finops', role: 'member', keys: [{ id: 'ZyXwVu987654', hash: HASH, scopes: ['read'] }] },
];
const REDIS = { redis: { existingSecret: { name: 'keygate-redis' } } };

let n = 0;
/** helm template with these values (a file: --set cannot write lists). */
function render(values: Record<string, unknown>): {
  ok: boolean;
  objects: K8sObject[];
  stderr: string;
} {
  const file = join(dir, `values-${n++}.yaml`);
  writeFileSync(file, stringify({ ...REDIS, ...values }));
  const r = spawnSync(assertHelm(), ['template', 'kg', CHART, '-f', file], { encoding: 'utf8' });
  if (r.status !== 0) return { ok: false, objects: [], stderr: r.stderr };
  const objects = parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
  return { ok: true, objects, stderr: r.stderr };
}

function rendered(values: Record<string, unknown>) {
  const out = render(values);
  expect(out.ok, out.stderr).toBe(true);
  const deployment = out.objects.find((o) => o.kind === 'Deployment');
  const accounts = out.objects.find(
    (o) => o.kind === 'ConfigMap' && o.metadata.name === 'kg-keygate-accounts',
  );
  return { ...out, deployment, accounts, pod: deployment?.spec?.template };
}

function refused(values: Record<string, unknown>, ...messages: string[]): string {
  const out = render(values);
  expect(out.ok, 'rendering should have failed').toBe(false);
  for (const m of messages) expect(out.stderr).toContain(m);
  return out.stderr;
}

describe('accounts: (DESIGN §14) in the chart', () => {
  it('by default: no accounts ConfigMap, no initContainer, keygate-config a plain ConfigMap volume, no checksum/accounts', () => {
    const { accounts, pod } = rendered({});
    expect(accounts).toBeUndefined();
    expect(pod?.spec.initContainers).toBeUndefined();
    expect(pod?.spec.volumes.find((v) => v.name === 'keygate-config')).toEqual({
      name: 'keygate-config',
      configMap: { name: 'kg-keygate' },
    });
    expect(Object.keys(pod?.metadata.annotations ?? {})).toEqual(['checksum/config']);
  });

  it('renders <fullname>-accounts with accounts.yaml = `accounts:` + the list, and validates strictly', async () => {
    const { accounts, deployment } = rendered({ accounts: ACCOUNTS });
    expect(Object.keys(accounts?.data ?? {})).toEqual(['accounts.yaml']);
    expect(parse(accounts?.data?.['accounts.yaml'] ?? '')).toEqual({ accounts: ACCOUNTS });
    expect(await validateK8sObject(accounts as never)).toEqual([]);
    expect(await validateK8sObject(deployment as never)).toEqual([]);
  });

  it("an apply-accounts initContainer runs `keygate apply -f /etc/keygate/accounts/accounts.yaml` with the server container's image, env and mounts", () => {
    const { pod } = rendered({ accounts: ACCOUNTS });
    const [init, ...more] = pod?.spec.initContainers ?? [];
    expect(more).toEqual([]);
    expect(init?.name).toBe('apply-accounts');
    expect(init?.args).toEqual(['apply', '-f', '/etc/keygate/accounts/accounts.yaml']);
    const keygate = pod?.spec.containers.find((c) => c.name === 'keygate');
    // Same config, store and Redis Secret as the server: it applies to the store keygate serves.
    expect(init?.image).toBe(keygate?.image);
    expect(init?.env).toEqual(keygate?.env);
    expect(init?.volumeMounts).toEqual(keygate?.volumeMounts);
    expect(init?.securityContext).toEqual(keygate?.securityContext);
    // The file reaches /etc/keygate/accounts/accounts.yaml through the projected config volume.
    expect(init?.volumeMounts).toContainEqual(
      expect.objectContaining({ name: 'keygate-config', mountPath: '/etc/keygate' }),
    );
    const volume = pod?.spec.volumes.find((v) => v.name === 'keygate-config');
    expect(volume?.projected?.sources).toEqual([
      { configMap: { name: 'kg-keygate' } },
      {
        configMap: {
          name: 'kg-keygate-accounts',
          items: [{ key: 'accounts.yaml', path: 'accounts/accounts.yaml' }],
        },
      },
    ]);
  });

  it('accountsPrune: true adds --prune; false (the default) does not', () => {
    expect(
      rendered({ accounts: ACCOUNTS, accountsPrune: true }).pod?.spec.initContainers?.[0]?.args,
    ).toEqual(['apply', '-f', '/etc/keygate/accounts/accounts.yaml', '--prune']);
    expect(
      rendered({ accounts: ACCOUNTS, accountsPrune: false }).pod?.spec.initContainers?.[0]?.args,
    ).not.toContain('--prune');
  });

  it('checksum/accounts is stable, changes when the accounts change (pods roll and re-apply), and leaves checksum/config alone', () => {
    const annotations = (values: Record<string, unknown>) =>
      rendered(values).pod?.metadata.annotations ?? {};
    const first = annotations({ accounts: ACCOUNTS });
    expect(first['checksum/accounts']).toMatch(/^[0-9a-f]{64}$/);
    expect(annotations({ accounts: ACCOUNTS })).toEqual(first);
    const revoked = [ACCOUNTS[0], { ...ACCOUNTS[1], keys: [] }];
    const disabled = [ACCOUNTS[0], { ...ACCOUNTS[1], disabled: true }];
    for (const changed of [revoked, disabled, ACCOUNTS.slice(0, 1)]) {
      const other = annotations({ accounts: changed });
      expect(other['checksum/accounts']).not.toBe(first['checksum/accounts']);
      expect(other['checksum/config']).toBe(first['checksum/config']);
    }
  });

  it('sidecar mode: the ConfigMap, and the example Pod applies with the same initContainer (file store on the shared volume)', async () => {
    const { accounts, objects } = rendered({
      mode: 'sidecar',
      sidecar: { examplePod: true },
      store: { type: 'file' },
      replicaCount: 1,
      accounts: ACCOUNTS,
    });
    expect(parse(accounts?.data?.['accounts.yaml'] ?? '')).toEqual({ accounts: ACCOUNTS });
    const pod = objects.find((o) => o.kind === 'Pod') as unknown as { spec: PodSpec };
    expect(pod.spec.initContainers?.map((c) => [c.name, c.args])).toEqual([
      ['apply-accounts', ['apply', '-f', '/etc/keygate/accounts/accounts.yaml']],
    ]);
    expect(pod.spec.initContainers?.[0]?.volumeMounts).toContainEqual(
      expect.objectContaining({ name: 'keygate-data', mountPath: '/data' }),
    );
    expect(await validateK8sObject(pod as never)).toEqual([]);
  });
});

describe('accounts: refused at render time', () => {
  const KEY = `kg_AbCdEf123456_${'a1B2c3D4e5'.repeat(4)}abcdefghi`;
  const withKey = (key: Record<string, unknown>) => [
    { name: 'ci-nightly', role: 'reader', keys: [{ id: 'AbCdEf123456', hash: HASH, ...key }] },
  ];

  it('a key entry with a `key:` field', () => {
    const stderr = refused(
      { accounts: withKey({ key: 'not-a-real-key' }) },
      'accounts[0].keys[0] has a `key:` field',
      "only the key's argon2id hash goes in values",
    );
    expect(stderr).not.toContain('not-a-real-key');
  });

  it('a plaintext key anywhere, named by its path and never echoed', () => {
    const cases: Array<[Record<string, unknown>[], string]> = [
      [withKey({ hash: KEY }), 'accounts[0].keys[0].hash looks like a plaintext API key'],
      [withKey({ description: KEY }), 'accounts[0].keys[0].description looks like'],
      [withKey({ scopes: ['read', KEY] }), 'accounts[0].keys[0].scopes[1] looks like'],
      [[{ name: 'x', role: 'reader', description: `rotated: ${KEY}` }], 'accounts[0].description'],
      [[{ name: 'x', role: 'reader', description: 'kg_anything' }], 'accounts[0].description'],
      [[{ name: 'x', role: 'reader', note: { deep: [KEY] } }], 'accounts[0].note.deep[0]'],
    ];
    for (const [accounts, message] of cases) {
      const stderr = refused({ accounts }, message, 'never put a key in values');
      expect(stderr).not.toContain(KEY);
    }
  });

  it('a key with the configured keys.prefix, and with the default kg_ prefix beside it', () => {
    const other = KEY.replace(/^kg_/, 'acme_');
    const config = { keys: { prefix: 'acme' } };
    refused(
      { config, accounts: withKey({ description: other }) },
      'looks like a plaintext API key (acme_',
    );
    refused(
      { config, accounts: withKey({ description: KEY }) },
      'looks like a plaintext API key (kg_',
    );
  });

  it('property: a generated key placed anywhere in an account is refused and never printed', () => {
    const base62 = fc.constantFrom(
      ...'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'.split(''),
    );
    const str = (n: number) =>
      fc.array(base62, { minLength: n, maxLength: n }).map((a) => a.join(''));
    const key = fc.tuple(str(12), str(49)).map(([id, secret]) => `kg_${id}_${secret}`);
    const place = fc.constantFrom(
      (k: string) => withKey({ hash: k }),
      (k: string) => withKey({ description: `old key ${k} rotated` }),
      (k: string) => withKey({ scopes: [k] }),
      (k: string) => [{ name: 'x', role: 'reader', description: k }],
      (k: string) => [
        { name: 'x', role: 'reader', keys: [{ id: 'AbCdEf123456', hash: HASH, key: k }] },
      ],
    );
    fc.assert(
      fc.property(key, place, (k, put) => {
        const out = render({ accounts: put(k) });
        expect(out.ok).toBe(false);
        expect(out.stderr).not.toContain(k);
        expect(out.stderr).not.toContain(k.slice(16));
      }),
      { numRuns: 15 },
    );
  });

  it('a hash that is not argon2id, or none', () => {
    for (const hash of [
      '$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA',
      '$2b$12$abcdefghijklmnopqrstuvwxyz012345678901234567890123',
      'argon2id$v=19',
      '',
      42,
    ]) {
      refused(
        { accounts: withKey({ hash }) },
        'accounts[0].keys[0].hash must be an argon2id hash starting with $argon2id$',
      );
    }
    refused(
      { accounts: [{ name: 'x', role: 'reader', keys: [{ id: 'AbCdEf123456' }] }] },
      'accounts[0].keys[0].hash must be an argon2id hash',
    );
  });

  it('a role that is not in config.roles', () => {
    refused(
      { accounts: [{ name: 'x', role: 'superuser' }] },
      'accounts[0].role "superuser" is not a role in config.roles (admin, member, reader)',
    );
    refused({ accounts: [{ name: 'x', role: '__proto__' }] }, 'is not a role in config.roles');
  });

  it('accountsPrune with no accounts, and prune that would remove the bootstrap account', () => {
    refused({ accountsPrune: true }, 'accountsPrune: true with no accounts');
    refused(
      { accounts: ACCOUNTS, accountsPrune: true, bootstrap: { enabled: true } },
      'accountsPrune: true would remove the bootstrap account "admin"',
    );
    // Listed, the bootstrap account is kept; without prune it is left alone.
    expect(
      render({
        accounts: [...ACCOUNTS, { name: 'admin', role: 'admin' }],
        accountsPrune: true,
        bootstrap: { enabled: true },
      }).ok,
    ).toBe(true);
    expect(render({ accounts: ACCOUNTS, bootstrap: { enabled: true } }).ok).toBe(true);
  });

  it('a non-list accounts value, or an account that is not a map', () => {
    refused({ accounts: { name: 'x' } }, 'accounts must be a list');
    refused({ accounts: ['ci-nightly'] }, 'accounts[0] must be an account');
  });
});

describe('accounts: values.schema.json', () => {
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as object;
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  const accepts = (values: unknown) => validate(values);

  it('accepts the documented format and refuses what the chart refuses', () => {
    expect(
      accepts({ accounts: ACCOUNTS, accountsPrune: true }),
      JSON.stringify(validate.errors),
    ).toBe(true);
    expect(accepts({ accounts: [] })).toBe(true);
    for (const bad of [
      [{ name: 'x', role: 'reader', keys: [{ id: 'AbCdEf123456', hash: HASH, key: 'k' }] }],
      [
        {
          name: 'x',
          role: 'reader',
          keys: [{ id: 'AbCdEf123456', hash: '$argon2i$v=19$m=1,t=1,p=1$a$b' }],
        },
      ],
      [{ name: 'x', role: 'reader', keys: [{ id: 'short', hash: HASH }] }],
      [{ name: 'x', role: 'reader', keys: [{ id: 'AbCdEf123456', hash: HASH, expires_at: -1 }] }],
      [{ name: 'Not_A_Name', role: 'reader' }],
      [{ name: 'x' }],
      [{ name: 'x', role: 'reader', extra: true }],
    ]) {
      expect(accepts({ accounts: bad }), JSON.stringify(bad)).toBe(false);
    }
    expect(accepts({ accountsPrune: 'yes' })).toBe(false);
  });
});
