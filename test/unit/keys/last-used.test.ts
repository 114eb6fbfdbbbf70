import { describe, expect, it } from 'vitest';
import { LastUsedRecorder } from '../../../src/keys/last-used.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { aKey, anAccount } from '../../helpers/key-store-contract.js';
import { MemoryKeyStore } from '../../helpers/memory-key-store.js';

async function setup() {
  const store = new MemoryKeyStore();
  await store.createAccount(anAccount());
  const key = aKey();
  await store.createKey(key);
  const clock = new FakeClock();
  const recorder = new LastUsedRecorder({ store, clock, intervalSeconds: 60, flushMs: 60_000 });
  let touches = 0;
  const touch = store.touchKeys.bind(store);
  store.touchKeys = async (uses) => {
    touches += uses.length;
    return touch(uses);
  };
  return { store, key, clock, recorder, touches: () => touches };
}

describe('LastUsedRecorder', () => {
  it('writes at most once a minute per key, in batches, off the request path', async () => {
    const { store, key, clock, recorder, touches } = await setup();
    for (let i = 0; i < 1000; i++) recorder.mark(key.id);
    expect(touches()).toBe(0); // marking never writes
    await recorder.flush();
    expect(touches()).toBe(1);
    expect(store.keys.get(key.id)?.lastUsedAt).toBe(clock.seconds);
    clock.advance(59_000);
    recorder.mark(key.id);
    await recorder.flush();
    expect(touches()).toBe(1);
    clock.advance(1_000);
    recorder.mark(key.id);
    await recorder.flush();
    expect(touches()).toBe(2);
    expect(store.keys.get(key.id)?.lastUsedAt).toBe(clock.seconds);
  });

  it('keeps marks when the store is down and writes them later', async () => {
    const { store, key, clock, recorder, touches } = await setup();
    recorder.mark(key.id);
    store.down = true;
    await recorder.flush();
    expect(store.keys.get(key.id)?.lastUsedAt).toBe(key.lastUsedAt); // nothing written
    store.down = false;
    await recorder.flush();
    expect(store.keys.get(key.id)?.lastUsedAt).toBe(clock.seconds); // the kept mark, written late
    // Written means no longer pending: a third flush writes nothing.
    const before = touches();
    await recorder.flush();
    expect(touches()).toBe(before);
  });

  it('close flushes what is pending', async () => {
    const { store, key, recorder } = await setup();
    recorder.mark(key.id);
    await recorder.close();
    expect(store.keys.get(key.id)?.lastUsedAt).toBeGreaterThan(0);
  });

  it('close writes marks made while a flush was in flight (shutdown loses none)', async () => {
    const { store, key, clock, recorder } = await setup();
    const other = aKey();
    await store.createKey(other);
    let release: () => void = () => {};
    const touch = store.touchKeys.bind(store);
    let calls = 0;
    store.touchKeys = async (uses) => {
      if (calls++ === 0)
        await new Promise<void>((resolve) => {
          release = resolve;
        });
      return touch(uses);
    };
    recorder.mark(key.id);
    void recorder.flush();
    recorder.mark(other.id); // after the in-flight flush took its batch
    const closing = recorder.close();
    release();
    await closing;
    expect(store.keys.get(other.id)?.lastUsedAt).toBe(clock.seconds);
  });
});
