import { execFileSync } from 'node:child_process';

/**
 * The path of promtool (Debian's `prometheus` package). Throws, never skips, when it is missing:
 * an unchecked rule, dashboard query or /metrics page is how broken monitoring ships.
 */
export function promtool(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'promtool is required by this test and was not found on PATH. Install it with ' +
        '`sudo apt-get install -y --no-install-recommends prometheus` (Debian/Ubuntu) or run ' +
        '`bash .ci/run`, which installs it.',
    );
  }
}
