import { afterEach, describe, expect, it, vi } from 'vitest';
import { KeyUseCounter } from '../../../src/keys/key-use-counter.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { aKey, anAccount } from '../../helpers/key-store-contract.js';
import { MemoryKeyStore } from '../../helpers/memory-key-store.js';

async function setup(maxPendingKeys = 100) {
  const store = new MemoryKeyStore();
  await store.createAccount(anAccount());
  const keys = [aKey(), aKey(), aKey(), aKey()];
  for (const k of keys) await store.createKey(k);
  const writes: Array<Array<{ id: string; count: number }>> = [];
  const add = store.addKeyUses.bind(store);
  store.addKeyUses = async (uses) => {
    writes.push([...uses]);
    return add(uses);
  };
  let dropped = 0;
  const errors: unknown[] = [];
  const counter = new KeyUseCounter({
    store,
    flushMs: 60_000,
    maxPendingKeys,
    onDropped: (n) => {
      dropped += n;
    },
    onError: (err) => errors.push(err),
  });
  const count = (id: string) => store.keys.get(id)?.requestCount ?? 0;
  return { store, keys, writes, counter, count, dropped: () => dropped, errors };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('KeyUseCounter', () => {
  it('counts in memory and adds the sums in one store call per flush', async () => {
    const { keys, writes, counter, count } = await setup();
    const [a, b] = keys as [ReturnType<typeof aKey>, ReturnType<typeof aKey>];
    for (let i = 0; i < 1000; i++) counter.count(a.id);
    counter.count(b.id);
    expect(writes).toHaveLength(0); // counting never writes
    await counter.flush();
    expect(writes).toEqual([
      [
        { id: a.id, count: 1000 },
        { id: b.id, count: 1 },
      ],
    ]);
    expect(count(a.id)).toBe(1000);
    // Written means no longer pending: nothing to write, no store call.
    await counter.flush();
    expect(writes).toHaveLength(1);
    counter.count(a.id);
    await counter.flush();
    expect(count(a.id)).toBe(1001);
  });

  it('holds at most maxPendingKeys keys between flushes; further keys are dropped and reported', async () => {
    const { keys, writes, counter, count, dropped } = await setup(2);
    const [a, b, c, d] = keys as [
      ReturnType<typeof aKey>,
      ReturnType<typeof aKey>,
      ReturnType<typeof aKey>,
      ReturnType<typeof aKey>,
    ];
    counter.count(a.id);
    counter.count(b.id);
    counter.count(c.id); // a third key: no room
    counter.count(d.id);
    counter.count(c.id);
    counter.count(a.id); // a key already held still counts
    expect(dropped()).toBe(3);
    await counter.flush();
    expect(writes[0]?.map((u) => u.id)).toEqual([a.id, b.id]);
    expect([count(a.id), count(b.id), count(c.id), count(d.id)]).toEqual([2, 1, 0, 0]);
    // After a flush the room is free again.
    counter.count(c.id);
    await counter.flush();
    expect(count(c.id)).toBe(1);
    expect(dropped()).toBe(3);
  });

  it('keeps counts when the store is down and adds them later, within the same bound', async () => {
    const { store, keys, counter, count, dropped, errors } = await setup(2);
    const [a, b, c] = keys as [
      ReturnType<typeof aKey>,
      ReturnType<typeof aKey>,
      ReturnType<typeof aKey>,
    ];
    counter.count(a.id);
    counter.count(a.id);
    store.down = true;
    await counter.flush();
    expect(errors).toHaveLength(1);
    expect(count(a.id)).toBe(0);
    counter.count(a.id);
    counter.count(b.id);
    counter.count(c.id); // the kept key and b fill the map: dropped
    await counter.flush();
    expect(errors).toHaveLength(2);
    store.down = false;
    await counter.flush();
    expect([count(a.id), count(b.id), count(c.id)]).toEqual([3, 1, 0]);
    expect(dropped()).toBe(1);
  });

  it('counts that arrive while a flush runs are written by the next one, not lost', async () => {
    const { store, keys, counter, count } = await setup();
    const [a] = keys as [ReturnType<typeof aKey>];
    let release: () => void = () => {};
    const add = store.addKeyUses.bind(store);
    store.addKeyUses = async (uses) => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      return add(uses);
    };
    counter.count(a.id);
    const first = counter.flush();
    counter.count(a.id); // while the first write is in flight
    release();
    await first;
    expect(count(a.id)).toBe(1);
    store.addKeyUses = add;
    await counter.flush();
    expect(count(a.id)).toBe(2);
  });

  it('close writes what is pending, even behind a flush in flight', async () => {
    const { store, keys, counter, count } = await setup();
    const [a] = keys as [ReturnType<typeof aKey>];
    let release: () => void = () => {};
    const add = store.addKeyUses.bind(store);
    let calls = 0;
    store.addKeyUses = async (uses) => {
      if (calls++ === 0)
        await new Promise<void>((resolve) => {
          release = resolve;
        });
      return add(uses);
    };
    counter.count(a.id);
    void counter.flush();
    counter.count(a.id); // taken by no flush yet
    const closing = counter.close();
    release();
    await closing;
    expect(count(a.id)).toBe(2);
  });

  it('the timer flushes every flushMs once started, and stops on close', async () => {
    vi.useFakeTimers();
    const { keys, counter, count, writes } = await setup();
    const [a] = keys as [ReturnType<typeof aKey>];
    counter.start();
    counter.count(a.id);
    await vi.advanceTimersByTimeAsync(59_999);
    expect(count(a.id)).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(count(a.id)).toBe(1);
    await counter.close();
    counter.count(a.id);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(writes).toHaveLength(1);
  });

  it('never recreates a key deleted while its counts were pending', async () => {
    const { store, keys, counter } = await setup();
    const [a] = keys as [ReturnType<typeof aKey>];
    counter.count(a.id);
    await store.deleteAccount('ci');
    await counter.flush();
    expect(store.keys.has(a.id)).toBe(false);
    expect(await store.getKey(a.id)).toBeNull();
  });

  it('drops are one counter in /metrics, and no series names a key', async () => {
    const store = new MemoryKeyStore();
    await store.createAccount(anAccount());
    const keys = [aKey(), aKey(), aKey()];
    for (const k of keys) await store.createKey(k);
    const metrics = new Metrics({ accountLabel: true, credentialReloads: false });
    const counter = new KeyUseCounter({
      store,
      flushMs: 60_000,
      maxPendingKeys: 1,
      onDropped: (n) => metrics.keyUsesDropped(n),
    });
    expect(await metrics.render()).toMatch(/^keygate_key_uses_dropped_total 0$/m);
    for (const k of keys) counter.count(k.id);
    await counter.close();
    const text = await metrics.render();
    expect(text).toMatch(/^keygate_key_uses_dropped_total 2$/m);
    for (const k of keys) expect(text).not.toContain(k.id);
  });
});
