import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { captureLog, registerKeysIn } from './captured-logs.js';

const ROOT = resolve(import.meta.dirname, '../..');
// The built CLI: children run exactly what ships (and start without a TypeScript loader,
// whose source-map support makes every Error expensive). `npm test` builds first.
const CLI = join(ROOT, 'dist/cli.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real, built CLI in a child process. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code) => {
      // stderr carries log and audit lines; stdout carries the key by design and is not a log.
      captureLog(stderr);
      registerKeysIn(stdout); // `keys create` / `keys rotate` print the new key: watch it for leaks
      done({ code, stdout, stderr });
    });
  });
}

export function writeTempConfig(config: Record<string, unknown> | string): string {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-config-'));
  const path = join(dir, 'keygate.yaml');
  writeFileSync(path, typeof config === 'string' ? config : stringify(config));
  return path;
}

export interface ServeProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  url: string;
  opsUrl: string;
  output(): string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `keygate serve` as its own process and waits for its "listening" log line. */
export function spawnServe(configPath: string, env: NodeJS.ProcessEnv = {}): Promise<ServeProcess> {
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--config', configPath], {
      cwd: ROOT,
      // Port 0 for the ops listener unless a test says otherwise: replicas must not collide.
      env: { ...process.env, KEYGATE_OPS_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`keygate serve did not start:\n${out}`)),
      20_000,
    );
    // 'close', not 'exit': 'exit' can come before the last output is read, and the leak oracle
    // must see every line the process wrote (its shutdown lines included).
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    child.stdout.on('data', (c: Buffer) => captureLog(c.toString()));
    child.stderr.on('data', (c: Buffer) => captureLog(c.toString()));
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const match = /"listen":"[^"]*:(\d+)","ops":"[^"]*:(\d+)"/.exec(out);
      if (match) {
        clearTimeout(timer);
        const port = Number(match[1]);
        const opsPort = Number(match[2]);
        done({
          child,
          pid: child.pid as number,
          port,
          url: `http://127.0.0.1:${port}`,
          opsUrl: `http://127.0.0.1:${opsPort}`,
          output: () => out,
          stop: async (signal = 'SIGTERM') => {
            child.kill(signal);
            return exited;
          },
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`keygate serve exited with ${code}:\n${out}`));
    });
  });
}
