import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A directory laid out the way the kubelet mounts a Secret volume (its AtomicWriter):
 *
 *   ..2026_05_01_10_00_00.000000001/token   the real file, in a timestamped directory
 *   ..data -> ..2026_05_01_10_00_00.000000001
 *   token  -> ..data/token
 *
 * `update` does what the kubelet does when the Secret changes: write a new timestamped
 * directory, point a `..data_tmp` symlink at it, rename that over `..data` (atomic), and
 * remove the old directory. The `token` symlink itself is never touched.
 */
export class SecretVolume {
  readonly dir: string;
  private generation = 0;
  private current: string | undefined;

  constructor(
    readonly key: string,
    value: string,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'keygate-secret-'));
    this.update(value);
    symlinkSync(join('..data', key), join(this.dir, key));
  }

  /** The path keygate is configured with (`…/token`). */
  get file(): string {
    return join(this.dir, this.key);
  }

  update(value: string): void {
    this.generation += 1;
    const stamp = `..2026_05_01_10_00_${String(this.generation).padStart(2, '0')}.${String(this.generation).padStart(9, '0')}`;
    mkdirSync(join(this.dir, stamp));
    writeFileSync(join(this.dir, stamp, this.key), value, { mode: 0o440 });
    symlinkSync(stamp, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (this.current !== undefined) rmSync(join(this.dir, this.current), { recursive: true });
    this.current = stamp;
  }

  /** A rotation that went wrong: `..data` points at a directory without the key. */
  breakKey(): void {
    this.generation += 1;
    const stamp = `..2026_05_01_10_00_${String(this.generation).padStart(2, '0')}.broken`;
    mkdirSync(join(this.dir, stamp));
    symlinkSync(stamp, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (this.current !== undefined) rmSync(join(this.dir, this.current), { recursive: true });
    this.current = stamp;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Polls `check` until it is true; fails after `timeoutMs` with `what`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
