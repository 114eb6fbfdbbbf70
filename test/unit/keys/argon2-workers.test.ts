import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { WorkerArgon2Hasher } from '../../../src/keys/argon2-workers.js';

// Real argon2id on worker threads (no ports, no Redis): small parameters keep it quick.
const hasher = new WorkerArgon2Hasher({ memoryCost: 4096, timeCost: 1, parallelism: 1 }, 2);
afterAll(() => hasher.close());

describe('WorkerArgon2Hasher', () => {
  it('hashes to an argon2id PHC string that verifies only the same key', async () => {
    const phc = await hasher.hash('kg_secret-one');
    expect(phc).toMatch(/^\$argon2id\$v=19\$m=4096,t=1,p=1\$/);
    expect(await hasher.verify(phc, 'kg_secret-one')).toBe(true);
    expect(await hasher.verify(phc, 'kg_secret-two')).toBe(false);
  });

  it('verifies a PHC string made with other parameters (parameters travel in the hash)', async () => {
    const strong = new WorkerArgon2Hasher({ memoryCost: 8192, timeCost: 2, parallelism: 1 }, 1);
    const phc = await strong.hash('k');
    await strong.close();
    expect(await hasher.verify(phc, 'k')).toBe(true);
  });

  it('runs its threads at lower OS priority than the event loop (Linux)', async () => {
    await hasher.hash('warm');
    expect(hasher.niced).toBe(process.platform === 'linux');
  });

  it('a malformed hash rejects (the caller refuses the request)', async () => {
    await expect(hasher.verify('not-a-phc-string', 'k')).rejects.toThrow(/argon2/);
  });

  it('handles more jobs than threads by queueing them', async () => {
    const phc = await hasher.hash('k');
    const results = await Promise.all(
      Array.from({ length: 9 }, (_, i) => hasher.verify(phc, i % 3 === 0 ? 'k' : 'x')),
    );
    expect(results.filter(Boolean)).toHaveLength(3);
  });

  it('a crashed worker fails its job and is replaced', async () => {
    const phc = await hasher.hash('k');
    const slots = (
      hasher as unknown as { slots: Array<{ worker: { terminate(): Promise<number> } }> }
    ).slots;
    // Parameters travel in the hash: t=400 makes this one job run for seconds, so the worker is
    // certainly still busy with it when it is killed (with t=1 the job could finish first).
    const pending = hasher.verify(phc.replace(',t=1,', ',t=400,'), 'k');
    await slots[0]!.worker.terminate();
    await expect(pending).rejects.toThrow(/exited/);
    expect(await hasher.verify(phc, 'k')).toBe(true);
  });
});

describe('WorkerArgon2Hasher: lazy threads', () => {
  const params = { memoryCost: 4096, timeCost: 1, parallelism: 1 };
  /** A hasher whose live-thread count the test can watch (the same hook a gauge would use). */
  function watched(threads: number, idleStopMs: number) {
    const seen: number[] = [];
    const h = new WorkerArgon2Hasher(params, threads, {
      idleStopMs,
      onThreads: (n) => seen.push(n),
    });
    onTestFinished(() => h.close());
    const live = () => seen.at(-1) ?? 0;
    const until = async (want: number) => {
      const deadline = Date.now() + 5000;
      while (live() !== want) {
        if (Date.now() > deadline) throw new Error(`live threads ${live()}, wanted ${want}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    return { h, seen, live, until };
  }

  it('starts no thread until the first job, then one per concurrent job up to the bound', async () => {
    const { h, seen, live } = watched(2, 60_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual([]);
    expect(h.niced).toBeUndefined(); // no worker has ever said hello
    const phc = await h.hash('k');
    expect(live()).toBe(1);
    // Sequential jobs reuse the idle live thread rather than starting the second.
    expect(await h.verify(phc, 'k')).toBe(true);
    expect(live()).toBe(1);
    const results = await Promise.all(Array.from({ length: 6 }, () => h.verify(phc, 'k')));
    expect(results).toEqual(Array(6).fill(true));
    expect(Math.max(...seen)).toBe(2);
  });

  it('stops a thread after idleStopMs without a job, and starts one again for the next job', async () => {
    const { h, live, until } = watched(2, 30);
    const phc = await h.hash('k');
    expect(live()).toBe(1);
    await until(0);
    expect(await h.verify(phc, 'k')).toBe(true);
    expect(await h.verify(phc, 'x')).toBe(false);
    expect(live()).toBe(1);
    await until(0);
  });

  it('a busy thread is not stopped for idleness, whatever the job takes', async () => {
    const { h, live } = watched(1, 30);
    const phc = await h.hash('k');
    // t=60 runs far longer than idleStopMs; the countdown only runs while there is no job.
    expect(await h.verify(phc.replace(',t=1,', ',t=60,'), 'k')).toBe(false);
    expect(live()).toBe(1);
  });

  it('a crashed thread fails its job closed; its slot starts a fresh thread for the next job', async () => {
    const { h, live } = watched(1, 60_000);
    const phc = await h.hash('k');
    const slots = (h as unknown as { slots: Array<{ worker: { terminate(): Promise<number> } }> })
      .slots;
    const pending = h.verify(phc.replace(',t=1,', ',t=400,'), 'k');
    const queued = h.verify(phc, 'k'); // waits behind it on the one thread
    await slots[0]!.worker.terminate();
    await expect(pending).rejects.toThrow(/exited/);
    expect(await queued).toBe(true);
    expect(live()).toBe(1);
  });

  it('close rejects queued jobs and every later one', async () => {
    const { h } = watched(1, 60_000);
    const phc = await h.hash('k');
    // Settled results, so the rejections close() causes are observed before it returns.
    const running = h.verify(phc.replace(',t=1,', ',t=400,'), 'k').catch((e: Error) => e);
    const queued = h.verify(phc, 'k').catch((e: Error) => e);
    await h.close();
    expect(String(await running)).toMatch(/closed/);
    expect(String(await queued)).toMatch(/closed/);
    await expect(h.verify(phc, 'k')).rejects.toThrow(/closed/);
  });
});
