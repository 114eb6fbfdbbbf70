import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin-client.js';
import { type Gateway, startGateway, testConfig } from '../helpers/gateway.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

let redis: RedisServer;
let upstream: RecordingUpstream;
let a: Gateway;
let b: Gateway;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
  const config = testConfig(upstream.url, { store: { type: 'redis', redis: { url: redis.url } } });
  a = await startGateway({ config });
  b = await startGateway({ config });
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await upstream?.close();
  await redis?.destroy();
});

it('two replicas rotating the same key at once: one new key, one 409, the old key expiring once', async () => {
  const root = await a.issue('root', 'admin');
  const viaA = adminClient(a.url, root.key);
  const viaB = adminClient(b.url, root.key);
  await viaA.createAccount('ci', 'reader');
  for (let round = 0; round < 5; round++) {
    const old = (await viaA.createKey('ci', { description: `round ${round}` })).json as {
      id: string;
    };
    const [first, second] = await Promise.all([
      viaA.rotate('ci', old.id, { grace_seconds: 600 }),
      viaB.rotate('ci', old.id, { grace_seconds: 600 }),
    ]);
    expect([first.status, second.status].sort()).toEqual([201, 409]);
    const winner = (first.status === 201 ? first : second).json as { id: string };
    const loser = first.status === 201 ? second : first;
    expect(loser.json.error).toBe('conflict');

    const keys = (await viaA.listKeys('ci')).json.items as Array<{
      id: string;
      description: string;
      replaced_by: string;
      status: string;
    }>;
    const thisRound = keys.filter((k) => k.description === `round ${round}`);
    expect(thisRound).toHaveLength(2); // the old key and exactly one replacement
    expect(thisRound.find((k) => k.id === old.id)).toMatchObject({
      replaced_by: winner.id,
      status: 'rotating',
    });
    // Rotating the old key again is refused: rotate its replacement instead.
    expect((await viaA.rotate('ci', old.id)).status).toBe(409);
  }
});
