import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, open, readFile, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';

/** The store file is refused to a second process: two writers would lose each other's changes. */
export class StoreLockedError extends Error {
  override readonly name = 'StoreLockedError';
}

export interface LeaseOptions {
  /**
   * A lock whose lease has not been renewed for this long is stale, whoever holds it. Also
   * the longest `acquire` waits for a lock that looks live but cannot be checked (another
   * host, another boot, unreadable).
   */
  ttlMs?: number;
  /** How often the holder renews (default ttl / 3). */
  renewMs?: number;
  /** How often a waiting contender looks again (default ttl / 15, at most 1 s). */
  pollMs?: number;
  /** Called once if the lock is lost (taken over, or replaced) while held. */
  onLost?: (err: StoreLockedError) => void;
}

/** What a holder writes into the lock file. */
interface LockContent {
  pid: number;
  host: string;
  /** Kernel boot id: the same pid on the same host means the same process only within one boot. */
  bootId?: string;
  /** The holder's process start time (clock ticks since boot), to tell a reused pid apart. */
  pidStart?: string;
  startedAt: string;
  nonce: string;
}

/** What identifies one version of the lock file, to take over exactly the file judged stale. */
interface Observed {
  ino: number;
  mtimeMs: number;
  size: number;
}

const DEFAULT_LEASE_TTL_MS = 15_000;

/** Nonces of the locks this process holds: a second open in one process is refused, not taken. */
const heldHere = new Set<string>();

function readProcFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function bootId(): string | undefined {
  return readProcFile('/proc/sys/kernel/random/boot_id');
}

/** Field 22 of /proc/PID/stat (start time), read after the last ")" since comm may hold spaces. */
function processStart(pid: number): string | undefined {
  const stat = readProcFile(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseLock(text: string): LockContent | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockContent>;
    if (
      typeof v.pid === 'number' &&
      typeof v.host === 'string' &&
      typeof v.nonce === 'string' &&
      typeof v.startedAt === 'string'
    ) {
      return v as LockContent;
    }
  } catch {
    // A partial or foreign file: judged by its mtime alone.
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sameVersion = (a: Observed, b: Observed) =>
  a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.size === b.size;

/**
 * An exclusive lease on a lock file, for a store only one process may write.
 *
 * A PID file alone cannot tell a live holder from a dead one in a container: after every
 * restart keygate is pid 1 again, and a rescheduled pod has another host name. So the holder
 * renews the file's mtime every few seconds, and a lock is stale when its holder is provably
 * gone (same host and boot, and its pid is dead, is ours, or started at another time), or when
 * its lease has not been renewed for the TTL. A lock that cannot be checked is waited for, up
 * to the TTL, never removed only because it cannot be read.
 */
export class LeaseLock {
  private timer: NodeJS.Timeout | undefined;
  private lostError: StoreLockedError | undefined;
  private released = false;

  private constructor(
    readonly path: string,
    private readonly content: LockContent,
    private readonly text: string,
    private readonly options: Required<Omit<LeaseOptions, 'onLost'>> & LeaseOptions,
  ) {}

  static async acquire(path: string, options: LeaseOptions = {}): Promise<LeaseLock> {
    const ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    const resolved = {
      ...options,
      ttlMs,
      renewMs: options.renewMs ?? Math.max(10, Math.floor(ttlMs / 3)),
      pollMs: options.pollMs ?? Math.max(10, Math.min(1000, Math.floor(ttlMs / 15))),
    };
    const content: LockContent = {
      pid: process.pid,
      host: hostname(),
      startedAt: new Date().toISOString(),
      nonce: randomBytes(16).toString('hex'),
    };
    const boot = bootId();
    const start = processStart(process.pid);
    if (boot !== undefined) content.bootId = boot;
    if (start !== undefined) content.pidStart = start;
    const text = JSON.stringify(content);
    // Registered before the file exists: another opener in this process may read the file
    // before our own continuation runs, and must see it as held here, not as a stale lock of
    // a previous process with our pid.
    heldHere.add(content.nonce);
    try {
      return await LeaseLock.contend(path, content, text, resolved);
    } catch (err) {
      heldHere.delete(content.nonce);
      throw err;
    }
  }

  private static async contend(
    path: string,
    content: LockContent,
    text: string,
    resolved: Required<Omit<LeaseOptions, 'onLost'>> & LeaseOptions,
  ): Promise<LeaseLock> {
    const { ttlMs } = resolved;
    const deadline = performance.now() + ttlMs + 2 * resolved.pollMs;
    // The version of the lock we are waiting on, and since when (our clock) it has not changed.
    let watched: { version: Observed; since: number } | undefined;
    for (;;) {
      if (await createExclusive(path, text)) {
        const lock = new LeaseLock(path, content, text, resolved);
        lock.startRenewing();
        return lock;
      }
      const version = await observe(path);
      if (version === undefined) continue; // released between our open and stat: try again
      const holder = parseLock(await readFile(path, 'utf8').catch(() => ''));
      if (watched === undefined || !sameVersion(watched.version, version)) {
        watched = { version, since: performance.now() };
      }
      const leaseExpired =
        Date.now() - version.mtimeMs > ttlMs || performance.now() - watched.since > ttlMs;
      const verdict = judge(holder, leaseExpired);
      if (verdict === 'stale') {
        // Bounded too: a stale lock that cannot be removed must not hang start-up.
        if (performance.now() >= deadline + ttlMs) throw lockedError(path, holder, ttlMs);
        await takeOver(path, version, ttlMs);
        // Whoever creates the lock now wins; if another contender is mid-take-over, give it
        // a moment rather than spinning.
        if (await exists(path)) await sleep(Math.min(resolved.pollMs, 20));
        continue;
      }
      if (verdict === 'live-here' || performance.now() >= deadline) {
        throw lockedError(path, holder, verdict === 'live-here' ? undefined : ttlMs);
      }
      await sleep(resolved.pollMs);
    }
  }

  /** Whether the lock is still ours; when not, the store must refuse writes. */
  get lost(): StoreLockedError | undefined {
    return this.lostError;
  }

  /**
   * Checks the lock is still ours (the same nonce) before a write is made: renewal catches a
   * take-over within renewMs, this closes most of the remaining window.
   */
  verifyHeld(): void {
    if (this.lostError) throw this.lostError;
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      // Missing: renewal will recreate it (nobody else holds it) or find it taken.
      return;
    }
    if (parseLock(text)?.nonce !== this.content.nonce) {
      this.markLost('replaced by another');
      throw this.lostError;
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    heldHere.delete(this.content.nonce);
    if (this.lostError) return; // not ours to remove any more
    const text = await readFile(this.path, 'utf8').catch(() => undefined);
    if (text !== undefined && parseLock(text)?.nonce === this.content.nonce) {
      await unlink(this.path).catch(() => undefined);
    }
  }

  private startRenewing(): void {
    this.timer = setInterval(() => void this.renew(), this.options.renewMs);
    this.timer.unref();
  }

  private async renew(depth = 0): Promise<void> {
    if (this.released || this.lostError) return;
    const text = await readFile(this.path, 'utf8').catch((err: NodeJS.ErrnoException) =>
      err.code === 'ENOENT' ? null : undefined,
    );
    if (this.released || this.lostError) return;
    if (text === null) {
      // Deleted under us (by hand, or a contender's take-over that it is about to undo).
      // Nobody holds it now: put ours back; if someone else got there first, we lost it.
      if (await createExclusive(this.path, this.text)) return;
      return depth < 3 ? this.renew(depth + 1) : undefined;
    }
    if (text === undefined) return; // transient read error: try again next time
    if (parseLock(text)?.nonce !== this.content.nonce) {
      return this.markLost('taken over by another');
    }
    const now = new Date();
    await utimes(this.path, now, now).catch(() => undefined);
  }

  private markLost(how: string): void {
    if (this.lostError) return;
    clearInterval(this.timer);
    heldHere.delete(this.content.nonce);
    this.lostError = new StoreLockedError(
      `store lock ${this.path} was ${how} process; refusing writes to the store file (restart this keygate)`,
    );
    this.options.onLost?.(this.lostError);
  }
}

type Verdict = 'stale' | 'live-here' | 'wait';

/** Whether a lock is provably abandoned, provably live on this machine, or to be waited on. */
function judge(holder: LockContent | undefined, leaseExpired: boolean): Verdict {
  if (holder !== undefined) {
    if (heldHere.has(holder.nonce)) return 'live-here';
    const boot = bootId();
    const sameMachine = holder.host === hostname() && boot !== undefined && holder.bootId === boot;
    if (sameMachine) {
      if (holder.pid === process.pid) return 'stale'; // a previous life of this pid (pid 1)
      if (!isAlive(holder.pid)) return 'stale';
      const start = processStart(holder.pid);
      if (holder.pidStart !== undefined && start !== undefined && start !== holder.pidStart) {
        return 'stale'; // the pid was reused by another process
      }
      return leaseExpired ? 'stale' : 'live-here';
    }
  }
  // Another host, another boot, or unreadable: only the lease can tell.
  return leaseExpired ? 'stale' : 'wait';
}

/**
 * Creates `path` holding `text` only if nothing is there. The content is written to a private
 * temp file first and then hard-linked into place (link never overwrites), so a lock file is
 * never seen half-written; where hard links are not supported, open(wx) and write.
 */
async function createExclusive(path: string, text: string): Promise<boolean> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeSynced(tmp, text, 'wx');
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  try {
    await writeSynced(path, text, 'wx');
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

async function writeSynced(path: string, text: string, flags: string): Promise<void> {
  const file = await open(path, flags, 0o600);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
}

async function exists(path: string): Promise<boolean> {
  return (await observe(path)) !== undefined;
}

async function observe(path: string): Promise<Observed | undefined> {
  try {
    const s = await stat(path);
    return { ino: s.ino, mtimeMs: s.mtimeMs, size: s.size };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Removes the lock only if it is still the version judged stale, and only if we are the one
 * contender allowed to: removal is guarded by a marker file named after that version and
 * created exclusively, so of any number of contenders exactly one removes a given version.
 * Nobody else ever removes a lock, and a new one is only ever created exclusively (`wx`) on an
 * empty path: whoever creates it first after the removal holds it, and only they.
 *
 * (Renaming the stale file aside and putting back a wrong one is not enough: while a live lock
 * is aside, a third contender can create its own, and two would hold the store.)
 */
async function takeOver(path: string, judged: Observed, ttlMs: number): Promise<void> {
  const base = `${path}.takeover-${judged.ino}-${judged.mtimeMs}-${judged.size}`;
  // A marker left by a contender that died mid-take-over is passed over once it is old.
  for (let attempt = 1; attempt <= 8; attempt++) {
    const marker = attempt === 1 ? base : `${base}-${attempt}`;
    if (await createExclusive(marker, String(process.pid))) {
      try {
        const now = await observe(path);
        if (now !== undefined && sameVersion(now, judged)) await unlink(path);
      } finally {
        await unlink(marker).catch(() => undefined);
      }
      return;
    }
    const seen = await observe(marker);
    if (seen !== undefined && Date.now() - seen.mtimeMs <= ttlMs) return; // someone is on it
  }
}

function lockedError(
  path: string,
  holder: LockContent | undefined,
  waitedMs: number | undefined,
): StoreLockedError {
  const who =
    holder === undefined
      ? 'another process (the lock file cannot be read)'
      : `keygate pid ${holder.pid} on ${holder.host}`;
  const waited =
    waitedMs === undefined ? '' : ` (its lease was renewed within the last ${waitedMs} ms)`;
  return new StoreLockedError(
    `store file is in use by ${who}${waited} (lock ${path}); ` +
      // The remote CLI is the answer for a running keygate: it asks that keygate, not the file.
      'manage it through the running keygate (--url URL --api-key-file FILE), stop that process, ' +
      'or use the Redis store to share keys between processes',
  );
}
