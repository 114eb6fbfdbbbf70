import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { FileKeyStore } from '../../src/store/file-key-store.js';
import { LeaseLock, StoreLockedError } from '../../src/store/file-lease-lock.js';

const HOLDER = resolve(import.meta.dirname, '../helpers/lock-holder.mjs');

function tempStore(): { dir: string; path: string; lock: string } {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-lease-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'keygate.json');
  return { dir, path, lock: `${path}.lock` };
}

/** A lock file as some holder would have written it; `ageMs` back-dates its lease. */
function writeLock(path: string, content: Record<string, unknown> | string, ageMs = 0): void {
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  const at = new Date(Date.now() - ageMs);
  utimesSync(path, at, at);
}

// This host's identity read here from /proc, not through src: the lock must agree with the
// kernel, not with itself.
function procFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
const bootId = () => procFile('/proc/sys/kernel/random/boot_id');
/** Field 22 of /proc/PID/stat (start time in clock ticks), counted after comm's ")". */
function processStart(pid: number): string | undefined {
  const stat = procFile(`/proc/${pid}/stat`);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function lockFrom(overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    pid: process.pid,
    host: hostname(),
    bootId: bootId(),
    pidStart: processStart(process.pid),
    startedAt: new Date(Date.now() - 60_000).toISOString(),
    nonce: randomBytes(16).toString('hex'),
    ...overrides,
  };
}

/** Keeps a lock's lease fresh, as a live holder on another host would. */
function keepRenewing(path: string): void {
  const timer = setInterval(() => {
    const now = new Date();
    try {
      utimesSync(path, now, now);
    } catch {
      // removed: the test's assertion will say so
    }
  }, 50);
  onTestFinished(() => clearInterval(timer));
}

/** A pid that was alive a moment ago and is now dead. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  const pid = child.pid as number;
  await new Promise((done) => child.once('exit', done));
  return pid;
}

interface Holder {
  child: ChildProcess;
  events: Array<Record<string, unknown>>;
  next(event: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Runs the built store in its own process (test/helpers/lock-holder.mjs). */
function spawnHolder(storePath: string, ttlMs: number): Holder {
  const child = spawn(process.execPath, [HOLDER, storePath, String(ttlMs)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const events: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  let buffer = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl = buffer.indexOf('\n');
    while (nl !== -1) {
      events.push(JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>);
      buffer = buffer.slice(nl + 1);
      nl = buffer.indexOf('\n');
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const holder: Holder = {
    child,
    events,
    async next(event) {
      for (;;) {
        const found = events.find((e) => e.event === event);
        if (found) return found;
        if (child.exitCode !== null) throw new Error(`holder exited without "${event}"`);
        await Promise.race([new Promise<void>((done) => waiters.push(done)), exited]);
      }
    },
    async stop() {
      child.stdin?.end();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        await Promise.race([exited, new Promise((done) => setTimeout(done, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await exited;
    },
  };
  onTestFinished(() => holder.stop());
  return holder;
}

async function open(path: string, ttlMs = 60_000): Promise<FileKeyStore> {
  const store = await FileKeyStore.open(path, { ttlMs });
  onTestFinished(() => store.close());
  return store;
}

function held(lockPath: string): Record<string, unknown> {
  return JSON.parse(readFileSync(lockPath, 'utf8')) as Record<string, unknown>;
}

describe('file store lease lock: stale locks are taken over', () => {
  it('a lock of a dead pid on this host is taken at once', async () => {
    const { path, lock } = tempStore();
    writeLock(lock, lockFrom({ pid: await deadPid(), pidStart: undefined }));
    await open(path);
    expect(held(lock).pid).toBe(process.pid);
  });

  it('a lock with our own pid but another nonce (pid 1 after a container restart) is taken at once', async () => {
    const { path, lock } = tempStore();
    writeLock(lock, lockFrom({}));
    const before = held(lock).nonce;
    await open(path);
    expect(held(lock).nonce).not.toBe(before);
    expect(held(lock).pid).toBe(process.pid);
  });

  it('a lock of the old format ({pid, host}) with our pid is taken', async () => {
    const { path, lock } = tempStore();
    writeLock(lock, { pid: process.pid, host: hostname() });
    await open(path, 2000);
    expect(held(lock).pid).toBe(process.pid);
  });

  it('a live pid whose start time differs from the recorded one (pid reused) is taken', async () => {
    const { path, lock } = tempStore();
    writeLock(lock, lockFrom({ pid: process.ppid, pidStart: '1' }));
    await open(path);
    expect(held(lock).pid).toBe(process.pid);
  });

  it('a lock from another host whose lease is old is taken at once', async () => {
    const { path, lock } = tempStore();
    writeLock(lock, lockFrom({ host: 'keygate-7d9f-old', bootId: 'other-boot' }), 10 * 60_000);
    await open(path);
    expect(held(lock).host).toBe(hostname());
  });

  it('a lock from another host whose lease stops being renewed is taken once the TTL passes', async () => {
    const { path, lock } = tempStore();
    writeLock(lock, lockFrom({ host: 'keygate-7d9f-old', bootId: 'other-boot' }));
    const store = await open(path, 600);
    expect(held(lock).host).toBe(hostname());
    await store.createAccount({
      name: 'after-takeover',
      role: 'reader',
      description: '',
      disabled: false,
      createdAt: 0,
      updatedAt: 0,
    });
  });

  it('an unreadable lock whose mtime is old is taken', async () => {
    const { path, lock } = tempStore();
    writeLock(lock, '{"pid": 12', 10 * 60_000);
    await open(path, 1000);
    expect(held(lock).pid).toBe(process.pid);
  });
});

describe('file store lease lock: live locks are refused', () => {
  it('a lock from another host whose lease is renewed is waited for, then refused, and left in place', async () => {
    const { path, lock } = tempStore();
    const content = JSON.stringify(lockFrom({ host: 'keygate-7d9f-new', bootId: 'other-boot' }));
    writeLock(lock, content);
    keepRenewing(lock);
    const err = await FileKeyStore.open(path, { ttlMs: 600 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreLockedError);
    expect((err as Error).message).toContain('keygate-7d9f-new');
    expect(readFileSync(lock, 'utf8')).toBe(content);
  });

  it('an unreadable (partial) lock with a fresh mtime is never unlinked', async () => {
    const { path, lock } = tempStore();
    writeLock(lock, '{"pid": 4');
    keepRenewing(lock);
    await expect(FileKeyStore.open(path, { ttlMs: 600 })).rejects.toBeInstanceOf(StoreLockedError);
    expect(readFileSync(lock, 'utf8')).toBe('{"pid": 4');
  });

  it('a lock that cannot be read at all (a directory), with a fresh mtime, is left alone', async () => {
    const { path, lock } = tempStore();
    mkdirSync(lock);
    keepRenewing(lock);
    await expect(FileKeyStore.open(path, { ttlMs: 600 })).rejects.toThrow(
      'the lock file cannot be read',
    );
    expect(statSync(lock).isDirectory()).toBe(true);
  });

  it('a second opener in this process is refused at once', async () => {
    const { path } = tempStore();
    await open(path);
    await expect(FileKeyStore.open(path, { ttlMs: 60_000 })).rejects.toThrow(
      `in use by keygate pid ${process.pid}`,
    );
  });

  it('a live keygate in another process is refused clearly, without waiting for the lease', async () => {
    const { path, lock } = tempStore();
    const holder = spawnHolder(path, 60_000);
    const { pid } = await holder.next('held');
    const err = await FileKeyStore.open(path, { ttlMs: 60_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).name).toBe('StoreLockedError');
    expect((err as Error).message).toContain(`in use by keygate pid ${pid} on ${hostname()}`);
    expect(held(lock).pid).toBe(pid);
  });
});

describe('file store lease lock: races and loss', () => {
  it('contenders in one process for one stale lock: exactly one wins, every time', async () => {
    const { path, lock } = tempStore();
    for (let round = 0; round < 50; round++) {
      writeLock(lock, lockFrom({ host: 'gone', bootId: 'gone' }), 10 * 60_000);
      const results = await Promise.allSettled(
        Array.from({ length: 4 }, () => LeaseLock.acquire(lock, { ttlMs: 60_000 })),
      );
      const winners = results.filter((r) => r.status === 'fulfilled');
      expect(winners).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(StoreLockedError);
      }
      const winner = (winners[0] as PromiseFulfilledResult<LeaseLock>).value;
      expect(winner.lost).toBeUndefined();
      await winner.release();
      expect(existsSync(lock)).toBe(false);
    }
    expect(
      readdirSync(join(path, '..')).filter((f) => f.includes('.takeover-') || f.endsWith('.tmp')),
    ).toEqual([]);
  });

  it('contending processes for one stale lock: exactly one wins', async () => {
    const { path, lock } = tempStore();
    writeLock(lock, lockFrom({ host: 'gone', bootId: 'gone' }), 10 * 60_000);
    const holders = Array.from({ length: 4 }, () => spawnHolder(path, 60_000));
    const outcomes = await Promise.all(
      holders.map((h) => Promise.race([h.next('held'), h.next('locked')])),
    );
    const winners = outcomes.filter((o) => o.event === 'held');
    expect(winners).toHaveLength(1);
    expect(held(lock).pid).toBe(winners[0]?.pid);
    for (const o of outcomes.filter((x) => x.event === 'locked')) {
      expect(o.message).toContain(`in use by keygate pid ${winners[0]?.pid}`);
    }
  });

  it('a holder whose lock is replaced refuses writes and fails its ping (readiness)', async () => {
    const { path, lock } = tempStore();
    const lost: Error[] = [];
    const store = await FileKeyStore.open(path, { ttlMs: 300, onLost: (e) => lost.push(e) });
    onTestFinished(() => store.close());
    await store.ping();
    writeLock(lock, lockFrom({ pid: 999_999, host: 'usurper', nonce: 'theirs' }));
    await expect(
      store.createAccount({
        name: 'after-loss',
        role: 'reader',
        description: '',
        disabled: false,
        createdAt: 0,
        updatedAt: 0,
      }),
    ).rejects.toMatchObject({ code: 'store_unavailable' });
    await expect.poll(() => lost.length, { timeout: 5000 }).toBe(1);
    await expect(store.ping()).rejects.toMatchObject({ code: 'store_unavailable' });
    await store.close();
    // Not ours any more: close leaves the other holder's lock alone.
    expect(held(lock).nonce).toBe('theirs');
  });

  it('a holder that stops renewing (SIGSTOP) loses the lock to a contender and then refuses writes', async () => {
    const { path, lock } = tempStore();
    const holder = spawnHolder(path, 500);
    const { pid } = await holder.next('held');
    holder.child.kill('SIGSTOP');
    await expect
      .poll(() => Date.now() - statSync(lock).mtimeMs > 600, { timeout: 10_000, interval: 50 })
      .toBe(true);
    // Same host and boot, pid alive with its own start time: only the lapsed lease frees it.
    const store = await open(path, 500);
    expect(held(lock).pid).toBe(process.pid);
    holder.child.kill('SIGCONT');
    const ping = await holder.next('ping');
    expect(ping.code).toBe('store_unavailable');
    expect(await holder.next('write')).toMatchObject({ ok: false, code: 'store_unavailable' });
    expect(held(lock).pid).toBe(process.pid);
    await store.ping();
    expect(pid).not.toBe(process.pid);
  });

  it('a lock removed by hand while held is recreated by the holder', async () => {
    const { path, lock } = tempStore();
    const store = await FileKeyStore.open(path, { ttlMs: 300 });
    onTestFinished(() => store.close());
    rmSync(lock);
    await expect.poll(() => existsSync(lock), { timeout: 5000 }).toBe(true);
    // Never seen half-written: the holder links a complete file into place.
    expect(held(lock).pid).toBe(process.pid);
    await store.ping();
  });
});
