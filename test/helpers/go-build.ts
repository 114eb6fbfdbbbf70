import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Builds the Go program in `sourceDir` (standard library only) and returns the binary's path.
 * Caches go in the temp dir, so the build works for root and non-root users, with or without a
 * writable $HOME; GOPROXY=off because no fixture fetches modules. Fails loudly without Go: CI
 * installs golang-go (.ci/run), and a missing toolchain is never a skip.
 */
export function buildGoProgram(sourceDir: string, name: string): string {
  const go = process.env.GO ?? 'go';
  const cache = join(tmpdir(), 'keygate-go');
  mkdirSync(cache, { recursive: true });
  const binary = join(cache, `${name}-${process.pid}`);
  const env = {
    ...process.env,
    GOCACHE: join(cache, 'build-cache'),
    GOPATH: join(cache, 'gopath'),
    GOPROXY: 'off',
    GOFLAGS: '',
    GOTOOLCHAIN: 'local',
    CGO_ENABLED: '0',
  };
  try {
    execFileSync(go, ['version'], { env, stdio: 'pipe' });
  } catch (err) {
    throw new Error(
      `this test needs a Go toolchain ("${go}" failed: ${(err as Error).message}); ` +
        'install it (Debian: apt-get install golang-go; .ci/run does) or set GO=/path/to/go',
    );
  }
  execFileSync(go, ['build', '-o', binary, '.'], { cwd: sourceDir, env, stdio: 'pipe' });
  return binary;
}
