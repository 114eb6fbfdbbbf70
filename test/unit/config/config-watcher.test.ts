import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DirectoryConfigWatcher, type WatchTrigger } from '../../../src/config/config-watcher.js';

async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  expect(condition()).toBe(true);
}

describe('DirectoryConfigWatcher', () => {
  it('a burst of writes in the directory is one debounced "watch" call', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-watch-'));
    const file = join(dir, 'keygate.yaml');
    writeFileSync(file, 'a');
    const calls: WatchTrigger[] = [];
    const watcher = new DirectoryConfigWatcher(file, { debounceMs: 100, pollMs: 60_000 });
    watcher.start((t) => calls.push(t));
    onTestFinished(() => watcher.close());
    for (let i = 0; i < 5; i++) writeFileSync(file, `b${i}`);
    await until(() => calls.length > 0);
    await new Promise((r) => setTimeout(r, 250));
    expect(calls).toEqual(['watch']);
  });

  it('the poll is the backstop: it calls even where the directory cannot be watched', async () => {
    const file = join(tmpdir(), 'kg-no-such-dir', 'nested', 'keygate.yaml');
    const calls: WatchTrigger[] = [];
    const watcher = new DirectoryConfigWatcher(file, { pollMs: 30 });
    watcher.start((t) => calls.push(t));
    await until(() => calls.length >= 2);
    watcher.close();
    const seen = calls.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(calls.length).toBe(seen); // closed: no more calls
    expect(new Set(calls)).toEqual(new Set(['poll']));
  });
});
