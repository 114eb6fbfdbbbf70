import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminClient, bodyFields, fieldsOf } from '../helpers/admin-client.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;
const clock = new FakeClock(Date.now());

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  gw = await startGateway({
    config: testConfig(upstream.url, { store: { type: 'redis', redis: { url: redis.url } } }),
    clock,
  });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

const proxied = (key: string) =>
  send(gw.url, '/model/allocation?window=1d', { headers: { 'x-api-key': key } });

it('create account → key → use → last used → rotate → both work → grace ends → revoke', async () => {
  const root = await gw.issue('root', 'admin'); // the bootstrap admin, as `keygate keys create` makes it
  const admin = adminClient(gw.url, root.key);

  // 1. account
  const account = await admin.createAccount('ci-reports', 'reader', 'nightly cost reports');
  expect(account.status).toBe(201);
  expect(bodyFields(account)).toEqual(fieldsOf('Account'));
  expect(account.json).toMatchObject({ name: 'ci-reports', role: 'reader', disabled: false });

  // 2. key, shown once
  const created = await admin.createKey('ci-reports', {
    description: 'GitHub Actions',
    expires_at: clock.seconds + 90 * 86_400,
  });
  expect(created.status).toBe(201);
  expect(bodyFields(created)).toEqual(fieldsOf('IssuedKey'));
  const first = created.json as { id: string; key: string };

  // 3. use it through the proxy
  expect((await proxied(first.key)).status).toBe(200);

  // 4. last_used_at shows up in the list (written off the request path, here flushed by hand)
  clock.advance(5_000);
  await gw.app.lastUsed.flush();
  const listed = await admin.listKeys('ci-reports');
  expect(listed.status).toBe(200);
  const items = listed.json.items as Array<Record<string, unknown>>;
  expect(items).toHaveLength(1);
  expect(Object.keys(items[0] as object).sort()).toEqual(fieldsOf('KeyMeta'));
  expect(items[0]).toMatchObject({
    id: first.id,
    status: 'active',
    last_used_at: clock.seconds - 5,
  });
  expect(listed.text).not.toContain(first.key);

  // 5. rotate with a one-hour grace
  const rotated = await admin.rotate('ci-reports', first.id, { grace_seconds: 3600 });
  expect(rotated.status).toBe(201);
  const second = rotated.json as {
    id: string;
    key: string;
    description: string;
    expires_at: number;
  };
  expect(second.description).toBe('GitHub Actions');
  expect(second.expires_at).toBe(clock.seconds - 5 + 90 * 86_400); // keeps the original expiry

  // 6. both keys work during the grace
  expect((await proxied(first.key)).status).toBe(200);
  expect((await proxied(second.key)).status).toBe(200);
  const during = (await admin.listKeys('ci-reports')).json.items as Array<Record<string, unknown>>;
  expect(during.find((k) => k.id === first.id)).toMatchObject({
    status: 'rotating',
    replaced_by: second.id,
    expires_at: clock.seconds + 3600,
  });

  // 7. the grace ends: the old key is refused as expired, the new one keeps working
  clock.advance(3601_000);
  const expired = await proxied(first.key);
  expect(expired.status).toBe(401);
  expect(expired.json.error).toBe('expired_key');
  expect((await proxied(second.key)).status).toBe(200);

  // 8. revoke the new key: refused at once, although it was just cached
  const revoked = await admin.revoke('ci-reports', second.id);
  expect(revoked.status).toBe(204);
  const refused = await proxied(second.key);
  expect(refused.status).toBe(401);
  expect(refused.json.error).toBe('revoked_key');
  // Revoking again is harmless.
  expect((await admin.revoke('ci-reports', second.id)).status).toBe(204);

  // The account view carries both keys' metadata and never a key.
  const shown = await admin.call('GET', '/service-accounts/ci-reports');
  expect(shown.status).toBe(200);
  expect((shown.json.keys as Array<{ status: string }>).map((k) => k.status).sort()).toEqual([
    'expired',
    'revoked',
  ]);
  expect(shown.text).not.toContain(first.key);
  expect(shown.text).not.toContain(second.key);

  // Every admin action left one audit line with the actor; no line carries a key.
  const audit = gw.logs.lines.filter((l) => l.type === 'audit' && l.actor === 'root');
  expect(audit.map((l) => l.action)).toEqual(
    expect.arrayContaining([
      'account.create',
      'key.create',
      'key.list',
      'key.rotate',
      'key.revoke',
      'account.show',
    ]),
  );
  expect(audit.every((l) => l.actor_key_id === root.id && l.result === 'ok')).toBe(true);
  for (const line of gw.logs.raw) {
    for (const key of [root.key, first.key, second.key]) expect(line).not.toContain(key);
  }
});

it('delete account: all its keys stop at once; disable and role downgrade take effect at once', async () => {
  const root = await gw.issue('root', 'admin');
  const admin = adminClient(gw.url, root.key);
  await admin.createAccount('dash', 'member');
  const key = ((await admin.createKey('dash', { description: 'grafana' })).json as { key: string })
    .key;
  const post = () =>
    send(gw.url, '/model/budget', {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
      body: '{}',
    });
  expect((await post()).status).toBe(200); // member may write; now cached

  expect((await admin.call('PATCH', '/service-accounts/dash', { role: 'reader' })).status).toBe(
    200,
  );
  expect((await post()).json.error).toBe('insufficient_scope');
  expect((await proxied(key)).status).toBe(200);

  expect(
    (await admin.call('PATCH', '/service-accounts/dash', { disabled: true })).json.disabled,
  ).toBe(true);
  expect((await proxied(key)).json.error).toBe('account_disabled');
  expect((await admin.call('PATCH', '/service-accounts/dash', { disabled: false })).status).toBe(
    200,
  );
  expect((await proxied(key)).status).toBe(200);

  expect((await admin.call('DELETE', '/service-accounts/dash')).status).toBe(204);
  expect((await proxied(key)).json.error).toBe('invalid_key');
  expect((await admin.call('GET', '/service-accounts/dash')).status).toBe(404);

  // A new account with the same name does not bring the old keys back.
  await admin.createAccount('dash', 'member');
  expect((await proxied(key)).json.error).toBe('invalid_key');
});
