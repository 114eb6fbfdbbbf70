import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin-client.js';
import { type Gateway, startGateway, TEST_ACTOR, testConfig } from '../helpers/gateway.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

// Audit lines name what an action produced (the new key's id; on rotation the id it replaces)
// and, for admin API actions, the request id, so an audit line joins its access line and the
// caller's own logs. Never the key itself (the leak oracle checks every line).

let redis: RedisServer;
let upstream: RecordingUpstream;
let gw: Gateway;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  gw = await startGateway({
    config: testConfig(upstream.url, { store: { type: 'redis', redis: { url: redis.url } } }),
  });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await redis?.destroy();
});

const audit = (action: string) =>
  gw.logs.lines.filter((l) => l.type === 'audit' && l.action === action);

it('admin API: key.create names key_id, key.rotate names key_id and replaced_key_id, each with the request id of its response', async () => {
  const root = await gw.issue('root', 'admin');
  const admin = adminClient(gw.url, root.key);
  expect((await admin.createAccount('ci', 'reader')).status).toBe(201);

  const created = await admin.createKey('ci', { description: 'pipeline' });
  expect(created.status).toBe(201);
  const first = created.json as { id: string };
  const rotated = await admin.rotate('ci', first.id, { grace_seconds: 60 });
  expect(rotated.status).toBe(201);
  const second = rotated.json as { id: string };
  expect(second.id).not.toBe(first.id);

  const [createLine] = audit('key.create').filter((l) => l.actor === 'root');
  expect(createLine).toMatchObject({
    result: 'ok',
    target: 'ci',
    key_id: first.id,
    actor_key_id: root.id,
    request_id: created.headers['x-request-id'],
  });
  expect(createLine).not.toHaveProperty('replaced_key_id');
  const [rotateLine] = audit('key.rotate');
  expect(rotateLine).toMatchObject({
    result: 'ok',
    target: `ci/${first.id}`,
    key_id: second.id,
    replaced_key_id: first.id,
    request_id: rotated.headers['x-request-id'],
  });
  expect(typeof rotateLine?.request_id).toBe('string');
  expect(rotateLine?.request_id).not.toBe(createLine?.request_id);

  // Every admin action carries its request id, refused ones too (a failed rotation: no key_id).
  const again = await admin.rotate('ci', first.id);
  expect(again.status).toBe(409);
  const failed = audit('key.rotate').find((l) => l.result === 'error');
  expect(failed).toMatchObject({ error: 'conflict', request_id: again.headers['x-request-id'] });
  expect(failed).not.toHaveProperty('key_id');
  const list = await admin.listKeys('ci');
  expect(audit('key.list').at(-1)).toMatchObject({ request_id: list.headers['x-request-id'] });
});

it('a client-chosen X-Request-Id, when keygate accepts it, is the one in the audit line', async () => {
  const root = await gw.issue('root2', 'admin');
  const admin = adminClient(gw.url, root.key);
  const res = await admin.call(
    'POST',
    '/service-accounts',
    { name: 'traced', role: 'reader' },
    {
      'x-request-id': 'trace-0123456789abcdef',
    },
  );
  expect(res.status).toBe(201);
  const line = audit('account.create').find((l) => l.target === 'traced');
  expect(line?.request_id).toBe(res.headers['x-request-id']);
});

it('CLI actions name the new key id but carry no request id (there is no request)', async () => {
  const issued = await gw.issue('cli-made', 'reader'); // through KeyService with the CLI actor
  expect(TEST_ACTOR.kind).toBe('cli');
  const line = audit('key.create').find((l) => l.target === 'cli-made');
  expect(line).toMatchObject({ actor: 'cli:test', key_id: issued.id, result: 'ok' });
  expect(line).not.toHaveProperty('request_id');
});
