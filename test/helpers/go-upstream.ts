import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SOURCE = fileURLToPath(new URL('../fixtures/go-upstream/', import.meta.url));

/** What the Go server made of one request (see test/fixtures/go-upstream/main.go). */
export interface GoSeen {
  go: true;
  /** 1 for the first request Go received, 2 for the second, … */
  n: number;
  method: string;
  path: string;
  pathHex: string;
  rawPath: string;
  escaped: string;
  rawQuery: string;
  requestURI: string;
  requestURIHex: string;
  host: string;
  headers: Record<string, string[]>;
  muxPattern: string;
  muxRedirect: boolean;
}

/**
 * Builds and starts the Go net/http upstream. Fails loudly when Go is missing: the
 * differential test is part of the suite, not an optional extra (.ci/run installs golang-go).
 */
export class GoUpstream {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly binary: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<GoUpstream> {
    const go = process.env.GO ?? 'go';
    // Caches in the temp dir, so the build works for root and non-root users, with or
    // without a writable $HOME; GOPROXY=off because the fixture uses the standard library only.
    const cache = join(tmpdir(), 'keygate-go');
    mkdirSync(cache, { recursive: true });
    const binary = join(cache, `go-upstream-${process.pid}`);
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
        `the Go differential test needs a Go toolchain ("${go}" failed: ${(err as Error).message}); ` +
          'install it (Debian: apt-get install golang-go; .ci/run does) or set GO=/path/to/go',
      );
    }
    execFileSync(go, ['build', '-o', binary, '.'], { cwd: SOURCE, env, stdio: 'pipe' });
    const child = spawn(binary, [], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout as NonNullable<typeof child.stdout> });
      lines.once('line', (line) => resolve(Number(line)));
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`go-upstream exited with ${code}`)));
    });
    return new GoUpstream(child, port, binary);
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill();
      await exited;
    }
    rmSync(this.binary, { force: true });
  }
}
