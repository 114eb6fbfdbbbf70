import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS_INSTALL_HINT =
  'redis-server is required by the integration tests and was not found on PATH. ' +
  'Install it with `sudo apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis`, ' +
  'or run `bash .ci/run`, which installs it.';

export function redisServerBinary(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(REDIS_INSTALL_HINT);
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A real redis-server on a free loopback port, in its own temp dir, with no persistence. */
export class RedisServer {
  private process: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'keygate-redis-'));

  private constructor(
    readonly port: number,
    private readonly persistent: boolean,
  ) {}

  /** `persistent`: keep data across stop()/start() (an RDB snapshot written on clean shutdown). */
  static async start(options: { persistent?: boolean } = {}): Promise<RedisServer> {
    const server = await RedisServer.reserve(options);
    await server.start();
    return server;
  }

  /** Picks the port without starting the server (to test clients that come up first). */
  static async reserve(options: { persistent?: boolean } = {}): Promise<RedisServer> {
    return new RedisServer(await freePort(), options.persistent ?? false);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  /** Starts (or restarts, on the same port) the server and waits until it accepts commands. */
  async start(): Promise<void> {
    const child = spawn(
      redisServerBinary(),
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        this.persistent ? '3600 1' : '',
        '--appendonly',
        'no',
        '--dir',
        this.dir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.process = child;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`redis-server did not start:\n${output}`)),
        10_000,
      );
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}:\n${output}`));
      });
    });
    child.removeAllListeners('exit');
  }

  /**
   * Freezes the server (SIGSTOP): connections stay open and commands go unanswered, as with a
   * Redis that hangs. Undo with resume(); stop() and destroy() resume first.
   */
  pause(): void {
    this.process?.kill('SIGSTOP');
  }

  resume(): void {
    this.process?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    this.process = undefined;
    child.kill('SIGCONT'); // a paused server would not write its snapshot on SIGTERM
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      // SIGTERM lets a persistent server write its snapshot before it exits.
      child.kill(this.persistent ? 'SIGTERM' : 'SIGKILL');
    });
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
