import { afterAll, describe, expect, it } from 'vitest';
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
