import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../helpers/fake-clock.js';
import { forgeKey, wrongSecretFor } from '../helpers/flood-worker.mjs';
import { type Gateway, startGateway, TEST_ACTOR, testConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { parsePrometheusText, series } from '../helpers/prom-text.js';
import { RedisServer } from '../helpers/redis-server.js';
import { RecordingUpstream } from '../helpers/upstream.js';

// A 401 for an expired, revoked or disabled key names the key record it found (account and
// key id) in the access line and in keygate_requests_total{account}, marked `key_proven: false`
// because no argon2 ran. A wrong secret or an unknown id (invalid_key) names nobody.

let redis: RedisServer;
let upstream: RecordingUpstream;

beforeAll(async () => {
  redis = await RedisServer.start();
  upstream = await RecordingUpstream.start();
});

afterAll(async () => {
  await upstream?.close();
  await redis?.destroy();
});

async function gateway(overrides: Record<string, unknown> = {}, clock = new FakeClock()) {
  const gw = await startGateway({
    config: testConfig(upstream.url, {
      store: { type: 'redis', redis: { url: redis.url, keyPrefix: `t${Math.random()}:` } },
      ...overrides,
    }),
    clock,
  });
  const ops = await gw.app.listenOps(0, '127.0.0.1');
  return { gw, clock, opsUrl: `http://127.0.0.1:${ops.port}` };
}

async function requestsTotal(opsUrl: string, labels: Record<string, string>) {
  const m = parsePrometheusText((await send(opsUrl, '/metrics')).text);
  return m.get(series('keygate_requests_total', labels)) ?? 0;
}

const get = (gw: Gateway, key: string) =>
  send(gw.url, '/model/allocation', { headers: { 'x-api-key': key } });

describe('refusal attribution', () => {
  let gw: Gateway;
  let clock: FakeClock;
  let opsUrl: string;
  beforeAll(async () => {
    ({ gw, clock, opsUrl } = await gateway());
  });
  afterAll(() => gw?.close());

  it('expired, revoked and disabled keys: the access line names account and key id (key_proven false), the counter counts the account', async () => {
    const expiring = await gw.issue('team-exp', 'reader', { expiresAt: clock.seconds + 60 });
    const revoked = await gw.issue('team-rev', 'reader');
    const disabled = await gw.issue('team-dis', 'reader');
    await gw.app.keys.revokeKey(TEST_ACTOR, 'team-rev', revoked.id);
    await gw.app.keys.updateAccount(TEST_ACTOR, 'team-dis', { disabled: true });
    clock.advance(120_000);

    const cases = [
      { key: expiring, account: 'team-exp', code: 'expired_key' },
      { key: revoked, account: 'team-rev', code: 'revoked_key' },
      { key: disabled, account: 'team-dis', code: 'account_disabled' },
    ];
    for (const c of cases) {
      // Twice: the second answer comes from the negative cache and must say the same.
      for (let i = 0; i < 2; i++) {
        const res = await get(gw, c.key.key);
        expect(res.status).toBe(401);
        expect(res.json).toMatchObject({ error: c.code });
      }
    }
    const lines = await gw.logs.waitForAccess(6);
    for (const [i, c] of cases.entries()) {
      for (const line of lines.slice(2 * i, 2 * i + 2)) {
        expect(line).toMatchObject({
          status: 401,
          error: c.code,
          account: c.account,
          key_id: c.key.id,
          key_proven: false,
          decision: 'deny',
        });
      }
      expect(
        await requestsTotal(opsUrl, {
          route: 'none',
          method: 'GET',
          code: '401',
          account: c.account,
        }),
      ).toBe(2);
    }
    expect(
      await requestsTotal(opsUrl, { route: 'none', method: 'GET', code: '401', account: 'none' }),
    ).toBe(0);
  });

  it('a forged secret for a revoked id is attributed too, but only as a claim (key_proven false); a wrong secret for a live id, an unknown id or a malformed key name nobody', async () => {
    const live = await gw.issue('team-live', 'reader');
    const dead = await gw.issue('team-dead', 'reader');
    await gw.app.keys.revokeKey(TEST_ACTOR, 'team-dead', dead.id);
    const before = gw.logs.access().length;
    const forgedDead = wrongSecretFor(dead.id);
    const statuses = [
      (await get(gw, forgedDead)).status,
      (await get(gw, wrongSecretFor(live.id))).status, // argon2 runs and fails: invalid_key
      (await get(gw, forgeKey('AAAAAAAAAAAA', 'B'.repeat(43)))).status, // unknown id
      (await get(gw, 'kg_garbage')).status, // malformed
    ];
    expect(statuses).toEqual([401, 401, 401, 401]);
    const lines = (await gw.logs.waitForAccess(before + 4)).slice(before);
    expect(lines[0]).toMatchObject({
      error: 'revoked_key',
      account: 'team-dead',
      key_id: dead.id,
      key_proven: false,
    });
    for (const line of lines.slice(1)) {
      expect(line.error).toBe('invalid_key');
      expect(line).not.toHaveProperty('account');
      expect(line).not.toHaveProperty('key_id');
      expect(line).not.toHaveProperty('key_proven');
    }
    expect(
      await requestsTotal(opsUrl, {
        route: 'none',
        method: 'GET',
        code: '401',
        account: 'team-live',
      }),
    ).toBe(0);
    expect(
      await requestsTotal(opsUrl, { route: 'none', method: 'GET', code: '401', account: 'none' }),
    ).toBe(3);
  });

  it('an allowed request carries no key_proven field (the principal is proven)', async () => {
    const ok = await gw.issue('team-ok', 'reader');
    const before = gw.logs.access().length;
    expect((await get(gw, ok.key)).status).toBe(200);
    const [line] = (await gw.logs.waitForAccess(before + 1)).slice(before);
    expect(line).toMatchObject({ account: 'team-ok', key_id: ok.id, status: 200 });
    expect(line).not.toHaveProperty('key_proven');
  });
});

describe('metrics.accountLabel: false', () => {
  it('every request is counted under account="_all", allowed and refused alike; the label stays', async () => {
    const { gw, opsUrl } = await gateway({ metrics: { accountLabel: false } });
    try {
      const ok = await gw.issue('team-a', 'reader');
      const gone = await gw.issue('team-b', 'reader');
      await gw.app.keys.revokeKey(TEST_ACTOR, 'team-b', gone.id);
      expect((await get(gw, ok.key)).status).toBe(200);
      expect((await get(gw, gone.key)).status).toBe(401);
      expect((await send(gw.url, '/model/allocation')).status).toBe(401);
      await gw.logs.waitForAccess(3);
      const text = (await send(opsUrl, '/metrics')).text;
      const lines = text.split('\n').filter((l) => l.startsWith('keygate_requests_total{'));
      expect(lines.length).toBeGreaterThan(0);
      for (const l of lines) expect(l).toContain('account="_all"');
      expect(
        await requestsTotal(opsUrl, {
          route: 'allocation',
          method: 'GET',
          code: '200',
          account: '_all',
        }),
      ).toBe(1);
      expect(
        await requestsTotal(opsUrl, { route: 'none', method: 'GET', code: '401', account: '_all' }),
      ).toBe(2);
      // The access log still names the account: only the metric label is folded.
      expect(gw.logs.access()[1]).toMatchObject({ account: 'team-b', key_id: gone.id });
    } finally {
      await gw.close();
    }
  });
});
