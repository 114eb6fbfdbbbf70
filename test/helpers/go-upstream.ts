import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { buildGoProgram } from './go-build.js';

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
    const binary = buildGoProgram(SOURCE, 'go-upstream');
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
