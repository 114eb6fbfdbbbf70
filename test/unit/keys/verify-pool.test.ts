import { describe, expect, it } from 'vitest';
import type { KeygateError } from '../../../src/errors.js';
import { VerifyPool } from '../../../src/keys/verify-pool.js';

describe('VerifyPool', () => {
  it('runs at most `concurrency` jobs, queues up to `maxQueue`, sheds the rest with 503', async () => {
    const pool = new VerifyPool(2, 3);
    let running = 0;
    let peak = 0;
    const release: Array<() => void> = [];
    const job = () =>
      new Promise<void>((resolve) => {
        running++;
        peak = Math.max(peak, running);
        release.push(() => {
          running--;
          resolve();
        });
      });
    const results = Array.from({ length: 8 }, () =>
      pool.run(job).then(
        () => 'ok',
        (e: KeygateError) => e.code,
      ),
    );
    await new Promise((r) => setTimeout(r, 1));
    expect(running).toBe(2);
    expect(pool.queueDepth).toBe(3);
    // The queue depth as /metrics reads it (keygate_key_verify_queue_depth), after every step.
    let maxQueue = pool.queueDepth;
    while (release.length > 0 || running > 0) {
      release.shift()?.();
      await new Promise((r) => setTimeout(r, 1));
      maxQueue = Math.max(maxQueue, pool.queueDepth);
    }
    const outcomes = await Promise.all(results);
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(5);
    expect(outcomes.filter((o) => o === 'verify_overloaded')).toHaveLength(3);
    expect(peak).toBe(2);
    expect(maxQueue).toBe(3);
    expect(pool.queueDepth).toBe(0);
    // Every slot came back: two new jobs start at once (a leaked slot would queue one forever).
    const started = running;
    const more = [pool.run(job), pool.run(job)];
    expect(running).toBe(started + 2);
    for (const r of release.splice(0)) r();
    await Promise.all(more);
  });

  it('frees the slot when a job fails', async () => {
    const pool = new VerifyPool(1, 0);
    await expect(pool.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(pool.run(() => Promise.resolve(42))).resolves.toBe(42);
  });
});
