import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway, TEST_ACTOR, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { type RunningNginx, startNginx } from '../helpers/nginx.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

// The shipped snippet, exactly as an operator copies it: the internal auth location as is, and
// the "protected location" block un-commented. Only the two addresses are filled in.
const SNIPPET = readFileSync(
  new URL('../../deploy/authz/nginx/keygate-authz.conf', import.meta.url),
  'utf8',
);
function shipped(keygate: string, aggregator: string): string {
  const protectedBlock = SNIPPET.slice(SNIPPET.indexOf('# protected location'))
    .split('\n')
    .filter((l) => l.startsWith('#   '))
    .map((l) => l.slice(4))
    .join('\n');
  const authLocation = SNIPPET.slice(0, SNIPPET.indexOf('# protected location'));
  return `${authLocation}\n${protectedBlock}`
    .replaceAll('KEYGATE', keygate)
    .replaceAll('AGGREGATOR', aggregator);
}

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
let nginx: RunningNginx;
let reader: string;
let url: string;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  gw = await startGateway({
    config: testConfig(upstream.url, {
      mode: 'authz',
      store: { type: 'redis', redis: { url: redis.url } },
      trustedProxies: ['127.0.0.1/32'],
    }),
  });
  reader = (await gw.issue('nginx-team', 'reader')).key;
  nginx = await startNginx(() => shipped(`127.0.0.1:${gw.port}`, new URL(upstream.url).host));
  url = `http://127.0.0.1:${nginx.port}`;
});

afterAll(async () => {
  await nginx?.stop();
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

describe('nginx auth_request in front of the Aggregator, keygate answering (shipped snippet)', () => {
  it('allowed: the Aggregator gets the request with keygate identity and without the key', async () => {
    upstream.reset();
    const res = await send(url, '/model/allocation?window=1d', {
      headers: { 'x-api-key': reader },
    });
    expect(res.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    const seen = upstream.requests[0];
    expect(seen?.url).toBe('/model/allocation?window=1d');
    expect(seen?.headers['x-keygate-account']).toBe('nginx-team');
    expect(seen?.headers['x-keygate-role']).toBe('reader');
    expect(seen?.headers['x-api-key']).toBeUndefined();
    expect(JSON.stringify(seen?.rawHeaders)).not.toContain(reader);
  });

  it('Bearer and Basic credentials are stripped too', async () => {
    upstream.reset();
    const basic = Buffer.from(`${reader}:`).toString('base64');
    for (const authorization of [`Bearer ${reader}`, `Basic ${basic}`]) {
      const res = await send(url, '/model/assets', { headers: { authorization } });
      expect(res.status).toBe(200);
    }
    expect(upstream.requests).toHaveLength(2);
    for (const seen of upstream.requests) {
      expect(seen.headers.authorization).toBeUndefined();
      expect(JSON.stringify(seen.rawHeaders)).not.toContain(reader);
    }
  });

  it('refused by route policy (403) and with no key (401): the Aggregator sees nothing', async () => {
    upstream.reset();
    expect((await send(url, '/model/etl/run', { headers: { 'x-api-key': reader } })).status).toBe(
      403,
    );
    expect(
      (await send(url, '/model/not-a-route', { headers: { 'x-api-key': reader } })).status,
    ).toBe(403);
    expect((await send(url, '/model/allocation')).status).toBe(401);
    expect(
      (await send(url, '/model/allocation', { headers: { 'x-api-key': `${reader}x` } })).status,
    ).toBe(401);
    expect(upstream.requests).toHaveLength(0);
  });

  it('forged identity headers from the client never reach the Aggregator', async () => {
    upstream.reset();
    const res = await send(url, '/model/allocation', {
      headers: {
        'x-api-key': reader,
        'X-Keygate-Account': 'root',
        'X-KEYGATE-ROLE': 'admin',
        'x-keygate-key-id': 'forged',
        X_Keygate_Account: 'root',
      },
    });
    expect(res.status).toBe(200);
    const raw = upstream.requests[0]?.rawHeaders ?? [];
    const identity = raw.filter((_, i) => i % 2 === 1 && /^x[-_]keygate/i.test(raw[i - 1] ?? ''));
    // Exactly keygate's three (account, key id, role); none of the client's.
    expect(identity).toHaveLength(3);
    expect(identity).toContain('nginx-team');
    expect(identity).toContain('reader');
    for (const forged of ['root', 'admin', 'forged']) expect(identity).not.toContain(forged);
  });

  it('a revoked key is refused at once', async () => {
    const issued = await gw.issue('nginx-revoked', 'reader');
    expect(
      (await send(url, '/model/allocation', { headers: { 'x-api-key': issued.key } })).status,
    ).toBe(200);
    await gw.app.keys.revokeKey(TEST_ACTOR, 'nginx-revoked', issued.id);
    expect(
      (await send(url, '/model/allocation', { headers: { 'x-api-key': issued.key } })).status,
    ).toBe(401);
  });
});
