import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  createKeyRuntime,
  type KeyRuntime,
  type KeyRuntimeLog,
} from '../../../src/keys/key-runtime.js';
import type { AuditEntry } from '../../../src/keys/key-service.js';
import {
  type Invalidation,
  type InvalidationBus,
  LocalInvalidationBus,
  LocalInvalidationChannel,
  type PublishResult,
  parseWireMessage,
} from '../../../src/store/invalidation-bus.js';
import type { KeyStore } from '../../../src/store/key-store.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { FastHasher } from '../../helpers/fast-hasher.js';
import { TEST_ACTOR, testConfig } from '../../helpers/gateway.js';
import { MemoryKeyStore } from '../../helpers/memory-key-store.js';

const config = testConfig('http://127.0.0.1:9', { keys: { cacheTtl: '60s' } });
const CALLER = { clientAddress: '192.0.2.1' };

interface Replica {
  runtime: KeyRuntime;
  /** verifier.apply calls, in order: the one way an invalidation reaches the cache. */
  applied: Invalidation[];
  /** Counted cache events the runtime itself reports ('invalidation', 'clear'). */
  events: string[];
  warnings: string[];
  errors: string[];
  audit: AuditEntry[];
  queueDepth: (() => number) | undefined;
}

function replica(options: {
  store: KeyStore;
  bus: InvalidationBus;
  subscribe?: boolean;
  hasher?: FastHasher;
}): Replica {
  const applied: Invalidation[] = [];
  const events: string[] = [];
  const warnings: string[] = [];
  const errors: string[] = [];
  const audit: AuditEntry[] = [];
  let queueDepth: (() => number) | undefined;
  const log: KeyRuntimeLog = {
    audit: (entry) => audit.push(entry),
    warn: (_fields, message) => warnings.push(message),
    error: (_fields, message) => errors.push(message),
  };
  const runtime = createKeyRuntime({
    config,
    store: options.store,
    bus: options.bus,
    clock: new FakeClock(),
    hasher: options.hasher ?? new FastHasher(),
    log,
    subscribe: options.subscribe ?? true,
    observer: {
      cacheEvent: (event) => {
        if (event === 'invalidation' || event === 'clear') events.push(event);
      },
      verifyDuration: () => {},
      watchQueueDepth: (read) => {
        queueDepth = read;
      },
    },
  });
  const r: Replica = { runtime, applied, events, warnings, errors, audit, queueDepth };
  // A spy on the real verifier (not a stand-in): every invalidation goes through apply().
  const apply = r.runtime.verifier.apply.bind(r.runtime.verifier);
  r.runtime.verifier.apply = (event) => {
    r.applied.push(event);
    apply(event);
  };
  onTestFinished(() => r.runtime.close());
  return r;
}

/** Two replicas on one store whose buses share an in-process channel, as Redis pub/sub would. */
function twoReplicas() {
  const store = new MemoryKeyStore();
  const channel = new LocalInvalidationChannel();
  const a = replica({ store, bus: new LocalInvalidationBus(channel) });
  const b = replica({ store, bus: new LocalInvalidationBus(channel) });
  return { store, a, b };
}

async function cachedKey(a: Replica, b: Replica, account: string, role = 'member') {
  await a.runtime.service.createAccount(TEST_ACTOR, { name: account, role });
  const issued = await a.runtime.service.createKey(TEST_ACTOR, account, { description: 't' });
  for (const r of [a, b]) await r.runtime.verifier.verify(issued.key, CALLER);
  a.applied.length = 0;
  b.applied.length = 0;
  return issued;
}

describe('one invalidation path', () => {
  const writes: Array<{
    name: string;
    run: (r: KeyRuntime, account: string, id: string) => Promise<unknown>;
    expected: (account: string, id: string) => Invalidation;
  }> = [
    {
      name: 'revoke',
      run: (r, account, id) => r.service.revokeKey(TEST_ACTOR, account, id),
      expected: (_account, id) => ({ kind: 'key', id }),
    },
    {
      name: 'rotate',
      run: (r, account, id) => r.service.rotateKey(TEST_ACTOR, account, id, 0),
      expected: (_account, id) => ({ kind: 'key', id }),
    },
    {
      name: 'disable',
      run: (r, account) => r.service.updateAccount(TEST_ACTOR, account, { disabled: true }),
      expected: (name) => ({ kind: 'account', name }),
    },
    {
      name: 'role change',
      run: (r, account) => r.service.updateAccount(TEST_ACTOR, account, { role: 'reader' }),
      expected: (name) => ({ kind: 'account', name }),
    },
    {
      name: 'account delete',
      run: (r, account) => r.service.deleteAccount(TEST_ACTOR, account),
      expected: (name) => ({ kind: 'account', name }),
    },
  ];

  for (const write of writes) {
    it(`${write.name}: applied exactly once here, before the call returns, and once on the other replica`, async () => {
      const { a, b } = twoReplicas();
      const issued = await cachedKey(a, b, 'acct');
      await write.run(a.runtime, 'acct', issued.id);
      const expected = write.expected('acct', issued.id);
      expect(a.applied).toEqual([expected]);
      expect(b.applied).toEqual([expected]);
      // One counted invalidation per application, as /metrics showed before.
      expect(a.events).toEqual(['invalidation']);
      expect(b.events).toEqual(['invalidation']);
      expect([...a.warnings, ...b.warnings, ...a.errors, ...b.errors]).toEqual([]);
    });
  }

  it('a revoke is refused from this replica and the other at once, although both had the key cached', async () => {
    const { a, b } = twoReplicas();
    const issued = await cachedKey(a, b, 'acct');
    await b.runtime.service.revokeKey(TEST_ACTOR, 'acct', issued.id);
    for (const r of [a, b]) {
      await expect(r.runtime.verifier.verify(issued.key, CALLER)).rejects.toMatchObject({
        code: 'revoked_key',
      });
    }
  });

  it('reads and non-weakening writes invalidate nothing', async () => {
    const { a, b } = twoReplicas();
    const issued = await cachedKey(a, b, 'acct');
    await a.runtime.service.listKeys(TEST_ACTOR, 'acct');
    await a.runtime.service.createKey(TEST_ACTOR, 'acct', { description: 'another' });
    await a.runtime.service.getAccount(TEST_ACTOR, 'acct');
    expect(a.applied).toEqual([]);
    expect(b.applied).toEqual([]);
    await expect(b.runtime.verifier.verify(issued.key, CALLER)).resolves.toMatchObject({
      account: 'acct',
    });
  });

  it('a runtime that does not subscribe (the CLI) publishes its writes but receives none', async () => {
    const store = new MemoryKeyStore();
    const channel = new LocalInvalidationChannel();
    const server = replica({ store, bus: new LocalInvalidationBus(channel) });
    const cli = replica({ store, bus: new LocalInvalidationBus(channel), subscribe: false });
    const issued = await cachedKey(server, server, 'acct');
    await cli.runtime.service.revokeKey(TEST_ACTOR, 'acct', issued.id);
    expect(cli.applied).toHaveLength(1);
    expect(server.applied).toEqual([{ kind: 'key', id: issued.id }]);
    const other = await server.runtime.service.createKey(TEST_ACTOR, 'acct', { description: 'x' });
    await server.runtime.service.revokeKey(TEST_ACTOR, 'acct', other.id);
    expect(cli.applied).toHaveLength(1);
  });
});

/** A bus that answers what the test says: the runtime's side of the confirmation protocol. */
class ScriptedBus implements InvalidationBus {
  published: Invalidation[] = [];
  onEvent: ((event: Invalidation) => void) | undefined;
  onResync: (() => void) | undefined;
  constructor(private readonly answer: () => Promise<PublishResult>) {}
  async publish(event: Invalidation): Promise<PublishResult> {
    this.published.push(event);
    return this.answer();
  }
  async subscribe(onEvent: (event: Invalidation) => void, onResync: () => void): Promise<void> {
    this.onEvent = onEvent;
    this.onResync = onResync;
  }
  async close(): Promise<void> {}
}

describe('confirmations and failures', () => {
  it('applies locally before publishing, and publishes each weakening write once', async () => {
    const store = new MemoryKeyStore();
    let appliedWhenPublished = -1;
    const r: { current?: Replica } = {};
    const bus = new ScriptedBus(async () => {
      appliedWhenPublished = r.current?.applied.length ?? -1;
      return { receivers: 0, confirmed: 0 };
    });
    r.current = replica({ store, bus });
    const issued = await cachedKey(r.current, r.current, 'acct');
    await r.current.runtime.service.revokeKey(TEST_ACTOR, 'acct', issued.id);
    expect(appliedWhenPublished).toBe(1);
    expect(bus.published).toEqual([{ kind: 'key', id: issued.id }]);
  });

  it('warns when a replica did not confirm in time; the write still succeeds', async () => {
    const bus = new ScriptedBus(async () => ({ receivers: 3, confirmed: 1 }));
    const r = replica({ store: new MemoryKeyStore(), bus });
    const issued = await cachedKey(r, r, 'acct');
    await r.runtime.service.revokeKey(TEST_ACTOR, 'acct', issued.id);
    expect(r.warnings).toEqual([
      '2 of 3 replicas did not confirm a cache invalidation in time; they may accept the old state for up to keys.cacheTtl',
    ]);
    expect(r.applied).toHaveLength(1);
  });

  it('a failed publish is logged as an error; the write succeeds and is applied here', async () => {
    const bus = new ScriptedBus(() => Promise.reject(new Error('redis away')));
    const r = replica({ store: new MemoryKeyStore(), bus });
    const issued = await cachedKey(r, r, 'acct');
    await r.runtime.service.revokeKey(TEST_ACTOR, 'acct', issued.id);
    expect(r.errors).toHaveLength(1);
    expect(r.applied).toEqual([{ kind: 'key', id: issued.id }]);
    await expect(r.runtime.verifier.verify(issued.key, CALLER)).rejects.toMatchObject({
      code: 'revoked_key',
    });
  });

  it('an event from another replica is applied once; a resync clears the cache and warns', async () => {
    const bus = new ScriptedBus(async () => ({ receivers: 0, confirmed: 0 }));
    const store = new MemoryKeyStore();
    const r = replica({ store, bus });
    const issued = await cachedKey(r, r, 'acct');
    bus.onEvent?.({ kind: 'key', id: 'OTHERKEY0001' });
    expect(r.applied).toEqual([{ kind: 'key', id: 'OTHERKEY0001' }]);
    bus.onResync?.();
    expect(r.events).toEqual(['invalidation', 'clear']);
    expect(r.warnings).toEqual([
      'invalidation channel reconnected: verified-key cache cleared, keys are checked afresh',
    ]);
    // Cleared: the next verify is a miss that reads the store again.
    const reads = store.reads;
    await r.runtime.verifier.verify(issued.key, CALLER);
    expect(store.reads).toBe(reads + 1);
  });

  it('hands the observer a live read of the argon2 queue (keygate_key_verify_queue_depth)', async () => {
    const hasher = new FastHasher();
    const r = replica({ store: new MemoryKeyStore(), bus: new LocalInvalidationBus(), hasher });
    await r.runtime.service.createAccount(TEST_ACTOR, { name: 'acct', role: 'member' });
    const issued = [];
    for (let i = 0; i < 5; i++)
      issued.push(await r.runtime.service.createKey(TEST_ACTOR, 'acct', { description: 't' }));
    expect(r.queueDepth?.()).toBe(0);
    // Hold argon2: with verifyConcurrency 2, five new keys are two running and three waiting.
    let release!: () => void;
    hasher.gate = new Promise((resolve) => {
      release = resolve;
    });
    const pending = issued.map((k) => r.runtime.verifier.verify(k.key, CALLER));
    for (let i = 0; i < 100 && hasher.verifyCalls < 2; i++)
      await new Promise((resolve) => setImmediate(resolve));
    expect(hasher.verifyCalls).toBe(2);
    expect(r.queueDepth?.()).toBe(3);
    hasher.gate = undefined;
    release();
    await Promise.all(pending);
    expect(r.queueDepth?.()).toBe(0);
  });
});

describe('LocalInvalidationBus', () => {
  it('delivers to the other buses on its channel, never back to itself, and counts them', async () => {
    const channel = new LocalInvalidationChannel();
    const [one, two, three] = [0, 1, 2].map(() => new LocalInvalidationBus(channel)) as [
      LocalInvalidationBus,
      LocalInvalidationBus,
      LocalInvalidationBus,
    ];
    const seen: string[] = [];
    await one.subscribe((e) => seen.push(`one:${JSON.stringify(e)}`));
    await two.subscribe((e) => seen.push(`two:${JSON.stringify(e)}`));
    await three.subscribe((e) => seen.push(`three:${JSON.stringify(e)}`));
    expect(await one.publish({ kind: 'key', id: 'K' })).toEqual({ receivers: 2, confirmed: 2 });
    expect(seen).toEqual(['two:{"kind":"key","id":"K"}', 'three:{"kind":"key","id":"K"}']);
    await two.close();
    expect(await one.publish({ kind: 'account', name: 'a' })).toEqual({
      receivers: 1,
      confirmed: 1,
    });
  });

  it('alone on its channel (the file store) it has nobody to tell', async () => {
    const bus = new LocalInvalidationBus();
    const seen: Invalidation[] = [];
    await bus.subscribe((e) => seen.push(e));
    expect(await bus.publish({ kind: 'key', id: 'K' })).toEqual({ receivers: 0, confirmed: 0 });
    expect(seen).toEqual([]);
  });
});

describe('parseWireMessage', () => {
  it('reads what a publisher writes: event, ack and origin', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({ kind: fc.constant('key' as const), id: fc.string() }),
          fc.record({ kind: fc.constant('account' as const), name: fc.string() }),
        ),
        fc.uuid(),
        fc.uuid(),
        (event, ack, origin) => {
          expect(parseWireMessage(JSON.stringify({ ...event, ack, origin }))).toEqual({
            event,
            ack,
            origin,
          });
        },
      ),
    );
  });

  it('never throws; anything that is not an event is undefined (a resync), odd ids are dropped', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        const parsed = parseWireMessage(text);
        if (parsed === undefined) return;
        expect(['key', 'account']).toContain(parsed.event.kind);
        for (const id of [parsed.ack, parsed.origin]) {
          if (id !== undefined) expect(id.length).toBeLessThanOrEqual(64);
        }
      }),
    );
    for (const hostile of [
      'null',
      '[]',
      '1',
      '"key"',
      '{"__proto__":{"kind":"key","id":"x"}}',
      '{"constructor":{"kind":"key"}}',
      '{"kind":"key","id":1}',
      '{"kind":"KEY","id":"x"}',
    ]) {
      expect(parseWireMessage(hostile), hostile).toBeUndefined();
    }
  });

  it('an old replica’s message (no origin) is an event; a non-string or overlong origin is ignored', () => {
    expect(parseWireMessage('{"kind":"key","id":"x","ack":"a"}')).toEqual({
      event: { kind: 'key', id: 'x' },
      ack: 'a',
      origin: undefined,
    });
    for (const origin of [7, null, { a: 1 }, 'o'.repeat(65)]) {
      expect(
        parseWireMessage(JSON.stringify({ kind: 'account', name: 'n', origin }))?.origin,
      ).toBeUndefined();
    }
  });
});
