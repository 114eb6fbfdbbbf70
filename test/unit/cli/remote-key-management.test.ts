import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/cli/args.js';
import {
  parseAnswer,
  RemoteError,
  RemoteKeyManagement,
  type Transport,
} from '../../../src/cli/remote-key-management.js';
import { resolveRemote } from '../../../src/cli/remote-target.js';
import { ConfigError } from '../../../src/config/load.js';
import { KeygateError } from '../../../src/errors.js';

const KEY = 'kg_AAAAAAAAAAAA_secretsecretsecretsecretsecretsecretsecret0000000';
const WHERE = { shown: 'https://keygate.example', apiKey: KEY };
const ACTOR = { kind: 'cli', user: 'test' } as const;

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('parseAnswer', () => {
  it('arbitrary answers never crash and never echo the key', () => {
    const withKey = fc.string().map((s) => s.replace(/x/g, KEY));
    fc.assert(
      fc.property(
        fc.integer({ min: 100, max: 599 }),
        fc.constantFrom(
          null,
          'application/json',
          'application/json; charset=utf-8',
          'text/html',
          KEY,
        ),
        fc.oneof(
          withKey,
          fc.json(),
          fc
            .record({
              error: fc.oneof(
                fc.constantFrom(
                  'not_found',
                  'insufficient_scope',
                  '__proto__',
                  'constructor',
                  'toString',
                ),
                withKey,
              ),
              message: withKey,
            })
            .map((o) => JSON.stringify(o)),
          fc
            .record({ items: fc.array(fc.record({ name: withKey })) })
            .map((o) => JSON.stringify(o)),
        ),
        (status, contentType, text) => {
          const err = thrown(() => parseAnswer({ status, contentType, text }, undefined, WHERE));
          if (err === undefined) return;
          expect(err instanceof KeygateError || err instanceof RemoteError).toBe(true);
          expect((err as Error).message).not.toContain(KEY);
        },
      ),
    );
  });

  it('maps the admin API error codes back to KeygateError, as local mode throws them', () => {
    for (const [status, code] of [
      [403, 'insufficient_scope'],
      [404, 'not_found'],
      [400, 'bad_request'],
      [401, 'invalid_key'],
    ] as const) {
      const err = thrown(() =>
        parseAnswer(
          {
            status,
            contentType: 'application/json',
            text: JSON.stringify({ code: status, error: code, message: `m ${KEY}\u001b[31m` }),
          },
          undefined,
          WHERE,
        ),
      );
      expect(err).toBeInstanceOf(KeygateError);
      expect((err as KeygateError).code).toBe(code);
      // The key is masked and terminal escapes are flattened.
      expect((err as KeygateError).message).toBe('m *** [31m');
    }
  });

  it('inherited names, unknown codes, HTML, redirects and other shapes are RemoteErrors', () => {
    for (const answer of [
      { status: 404, contentType: 'application/json', text: '{"error":"__proto__"}' },
      { status: 404, contentType: 'application/json', text: '{"error":"toString"}' },
      { status: 500, contentType: 'application/json', text: '{"error":"no_such_code"}' },
      { status: 200, contentType: 'text/html', text: '<html></html>' },
      { status: 302, contentType: null, text: '' },
      { status: 200, contentType: 'application/json', text: '{"items":[{"name":1}]}' },
      { status: 200, contentType: 'application/json', text: '{"items":' },
    ]) {
      const err = thrown(() => parseAnswer(answer, undefined, WHERE));
      expect(err, JSON.stringify(answer)).toBeInstanceOf(RemoteError);
    }
  });
});

/** A transport that answers from a function and records what was sent. */
function fake(
  answer: (url: string) => {
    status: number;
    headers?: Record<string, string>;
    chunks?: Uint8Array[];
  },
) {
  const sent: Array<{ url: string; headers: Record<string, string> }> = [];
  const transport: Transport = async (url, init) => {
    sent.push({ url, headers: init.headers });
    const a = answer(url);
    return {
      status: a.status,
      header: (name) => a.headers?.[name] ?? null,
      body: (async function* () {
        for (const c of a.chunks ?? []) yield c;
      })(),
      discard: () => {},
    };
  };
  return { sent, transport };
}

const target = { base: 'https://kg.example', shown: 'https://kg.example', apiKey: KEY };

describe('RemoteKeyManagement', () => {
  it('sends the key only in x-api-key to the given origin', async () => {
    const { sent, transport } = fake(() => ({
      status: 200,
      headers: { 'content-type': 'application/json' },
      chunks: [Buffer.from('{"items":[]}')],
    }));
    const client = new RemoteKeyManagement(target, { transport });
    expect(await client.listAccounts(ACTOR)).toEqual([]);
    expect(sent).toEqual([
      {
        url: 'https://kg.example/_keygate/v1/service-accounts',
        headers: { 'x-api-key': KEY, accept: 'application/json' },
      },
    ]);
  });

  it('refuses an answer over the cap, streamed or declared', async () => {
    for (const answer of [
      {
        status: 200,
        headers: { 'content-type': 'application/json' },
        chunks: [new Uint8Array(600), new Uint8Array(600)],
      },
      { status: 200, headers: { 'content-type': 'application/json', 'content-length': '5000' } },
    ]) {
      const client = new RemoteKeyManagement(target, {
        transport: fake(() => answer).transport,
        maxAnswerBytes: 1000,
      });
      await expect(client.listAccounts(ACTOR)).rejects.toThrow(/larger than this client accepts/);
    }
  });

  it('names that are not account names or key ids never become a path', async () => {
    const { sent, transport } = fake(() => ({ status: 204 }));
    const client = new RemoteKeyManagement(target, { transport });
    for (const name of ['..', '.', 'a/b', '%2e%2e', '__proto__', 'A', '']) {
      await expect(client.deleteAccount(ACTOR, name)).rejects.toMatchObject({ code: 'not_found' });
      await expect(client.revokeKey(ACTOR, 'ok', name)).rejects.toMatchObject({
        code: 'not_found',
      });
    }
    expect(sent).toEqual([]);
  });

  it('network failures name the URL and the reason, never the key', async () => {
    const client = new RemoteKeyManagement(target, {
      transport: async () => {
        throw Object.assign(new Error(`boom ${KEY}`), { code: 'ECONNREFUSED' });
      },
    });
    const err = await client.listAccounts(ACTOR).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as Error).message).toBe('cannot reach keygate at https://kg.example: ECONNREFUSED');
  });
});

it('arbitrary bodies through every typed call: a value or a clean error, never the key', async () => {
  const withKey = fc.string().map((s) => s.replace(/x/g, KEY));
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 100, max: 599 }),
      fc.oneof(
        withKey,
        fc.json(),
        fc.jsonValue().map((v) => JSON.stringify({ items: [v], key: v })),
      ),
      fc.constantFrom(
        'listAccounts',
        'getAccount',
        'createKey',
        'rotateKey',
        'listKeys',
      ) as fc.Arbitrary<string>,
      async (status, text, call) => {
        const { transport } = fake(() => ({
          status,
          headers: { 'content-type': 'application/json' },
          chunks: [Buffer.from(text)],
        }));
        const c = new RemoteKeyManagement(target, { transport });
        const run: Record<string, () => Promise<unknown>> = {
          listAccounts: () => c.listAccounts(ACTOR),
          getAccount: () => c.getAccount(ACTOR, 'a'),
          createKey: () => c.createKey(ACTOR, 'a', { description: 'd' }),
          rotateKey: () => c.rotateKey(ACTOR, 'a', 'AAAAAAAAAAAA'),
          listKeys: () => c.listKeys(ACTOR, 'a'),
        };
        const err = await (run[call] as () => Promise<unknown>)().then(
          () => undefined,
          (e: unknown) => e,
        );
        if (err === undefined) return;
        expect(err instanceof KeygateError || err instanceof RemoteError).toBe(true);
        expect((err as Error).message).not.toContain(KEY);
      },
    ),
  );
});

describe('resolveRemote', () => {
  const none = () => {};
  it('is local mode when nothing asks for remote', () => {
    expect(resolveRemote({}, {}, none)).toBeUndefined();
  });

  it('takes flags over the environment', () => {
    const t = resolveRemote(
      { url: 'https://a.example/', 'api-key': 'flag' },
      { KEYGATE_URL: 'https://b.example', KEYGATE_API_KEY: 'env' },
      none,
    );
    expect(t).toEqual({ base: 'https://a.example', shown: 'https://a.example', apiKey: 'flag' });
    expect(
      resolveRemote({}, { KEYGATE_URL: 'https://b.example', KEYGATE_API_KEY: 'env' }, none)?.apiKey,
    ).toBe('env');
  });

  it('refuses bad URLs and keys without echoing the key (exit 2)', () => {
    fc.assert(
      fc.property(
        // A marker no message text holds: an arbitrary short key ("key") can be a word of the
        // fixed message itself, which is not an echo.
        fc.string({ minLength: 1 }).map((s) => `Zq9${s}`),
        fc.constantFrom('http://u:KEY@h', 'ftp://h', 'KEY', 'https://h/?k=KEY'),
        (key, url) => {
          const err = thrown(() =>
            resolveRemote({ url: url.replace('KEY', key), 'api-key': key }, {}, none),
          );
          if (err === undefined) return; // a visible-ASCII key with a good URL: fine
          expect(err).toBeInstanceOf(UsageError);
          expect((err as Error).message).not.toContain(key);
        },
      ),
    );
    expect(() => resolveRemote({ 'api-key': 'k' }, {}, none)).toThrow(UsageError);
    expect(() => resolveRemote({ url: 'https://h' }, {}, none)).toThrow(UsageError);
    expect(() => resolveRemote({ url: 'https://h', 'api-key': 'a\nb' }, {}, none)).toThrow(
      UsageError,
    );
    expect(() =>
      resolveRemote({ url: 'https://h', 'api-key': 'k', config: 'x.yaml' }, {}, none),
    ).toThrow(UsageError);
  });

  it('a missing --cli-config file is a ConfigError naming it', () => {
    const err = thrown(() => resolveRemote({ 'cli-config': '/nonexistent/cli.yaml' }, {}, none));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('/nonexistent/cli.yaml');
  });

  it('warns about plain http to another host, not to loopback', () => {
    const lines: string[] = [];
    resolveRemote({ url: 'http://keygate.ns.svc:8080', 'api-key': 'k' }, {}, (l) => lines.push(l));
    resolveRemote({ url: 'http://127.0.0.1:8080', 'api-key': 'k' }, {}, (l) => lines.push(l));
    resolveRemote({ url: 'http://[::1]:8080', 'api-key': 'k' }, {}, (l) => lines.push(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('plain http to keygate.ns.svc:8080');
  });
});
