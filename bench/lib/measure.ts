import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

import { closeSync, openSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import autocannon from 'autocannon';

export const ROOT = resolve(import.meta.dirname, '../..');
const CLOCK_TICKS =
  Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

const started: ChildProcess[] = [];
// Whatever happens to the benchmark, the servers it started do not outlive it.
process.on('exit', () => {
  for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
});

/** Registers a child process to be killed when the benchmark exits. */
export function track(child: ChildProcess): ChildProcess {
  started.push(child);
  return child;
}

export interface Server {
  child: ChildProcess;
  port: number;
  /** The output line that announced the port(s). */
  readyLine: string;
  /** Every process that serves (nginx: master and workers), for CPU and RSS. */
  pids(): number[];
  stop(): Promise<void>;
}

/**
 * Starts a server process and waits for the line that tells its port (`listening <port>` by
 * default). Its output is read and dropped, so a chatty server never blocks on a full pipe.
 */
export function startServer(
  command: string,
  args: string[],
  options: {
    ready?: RegExp;
    env?: NodeJS.ProcessEnv;
    logFile?: string;
    /** For a server that announces nothing (e.g. logs at warn): returns the ready line once up. */
    probe?: () => Promise<string | undefined>;
  } = {},
): Promise<Server> {
  const ready = options.ready ?? /listening (\d+)/;
  if (options.logFile)
    return startLoggingServer(command, args, ready, options.logFile, options.env, options.probe);
  return new Promise((done, reject) => {
    const child = track(
      spawn(command, args, {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...options.env },
      }),
    );
    let out = '';
    let found = false;
    child.stderr?.on('data', (c) => {
      if (!found) out += c;
    });
    child.stdout?.on('data', (c) => {
      if (found) return;
      out += c;
      const match = ready.exec(out);
      if (match) {
        found = true;
        const readyLine = match[0];
        out = '';
        done({
          child,
          readyLine,
          pids: () => [child.pid as number],
          port: Number(match[1]),
          stop: () =>
            new Promise((r) => {
              child.once('exit', () => r());
              child.kill('SIGKILL');
            }),
        });
      }
    });
    child.once('exit', (code) =>
      reject(new Error(`${command} ${args.join(' ')} exited with ${code}: ${out}`)),
    );
  });
}

/**
 * A server whose stdout goes to a file, like a container runtime's log driver: the benchmark's
 * own event loop (blocked while wrk runs) can then never stall the server's log writes.
 */
async function startLoggingServer(
  command: string,
  args: string[],
  ready: RegExp,
  logFile: string,
  env: NodeJS.ProcessEnv | undefined,
  probe?: () => Promise<string | undefined>,
): Promise<Server> {
  const out = openSync(logFile, 'w');
  const child = track(
    spawn(command, args, {
      cwd: ROOT,
      stdio: ['ignore', out, out],
      env: { ...process.env, ...env },
    }),
  );
  closeSync(out);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const match = ready.exec((probe ? await probe() : undefined) ?? readFileSync(logFile, 'utf8'));
    if (match) {
      return {
        child,
        readyLine: match[0],
        pids: () => [child.pid as number],
        port: Number(match[1]),
        stop: () =>
          new Promise((r) => {
            if (child.exitCode !== null || child.signalCode !== null) return r();
            child.once('exit', () => r());
            child.kill('SIGKILL');
          }),
      };
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(
        `${command} ${args.join(' ')} did not start:\n${readFileSync(logFile, 'utf8')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** user+system CPU seconds the kernel has charged to a process so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the ")" that closes the command name: utime is the 12th, stime the 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export function rssBytes(pid: number): number {
  return (
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024
  );
}

export function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  non2xx: number;
}

/** Runs wrk (preferred) or autocannon against a URL with the given headers. */
export async function load(
  url: string,
  options: {
    connections: number;
    seconds: number;
    headers?: Record<string, string>;
    tool: 'wrk' | 'autocannon';
    /** Rotate X-API-KEY through these (one per line); wrk only. */
    keysFile?: string;
    /** Fixed total request rate; autocannon only (wrk cannot hold a rate). */
    rate?: number;
  },
): Promise<LoadResult> {
  const headers = Object.entries(options.headers ?? {});
  if (options.tool === 'wrk' && options.rate === undefined) {
    const args = ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--latency'];
    for (const [k, v] of headers) args.push('-H', `${k}: ${v}`);
    if (options.keysFile) args.push('-s', `${ROOT}/bench/lib/rotate-keys.lua`);
    // Asynchronous: a flood and a measured load must be able to run at the same time.
    const { stdout: out } = await execFileAsync('wrk', [...args, url], {
      encoding: 'utf8',
      env: { ...process.env, KEYS_FILE: options.keysFile ?? '' },
    });
    // wrk prints the duration in its own unit: "in 8.00s", "in 2.03m".
    const done = /(\d+) requests in ([\d.]+)(ms|s|m|h)\b/.exec(out);
    const requests = Number(done?.[1] ?? 0);
    const unit = { ms: 0.001, s: 1, m: 60, h: 3600 }[(done?.[3] ?? 's') as 'ms' | 's' | 'm' | 'h'];
    const seconds = done ? Number(done[2]) * unit : options.seconds;
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
    return {
      requests,
      seconds,
      rps: requests / seconds,
      p50ms: wrkLatency(out, '50%'),
      p99ms: wrkLatency(out, '99%'),
      non2xx,
    };
  }

  const keys = options.keysFile
    ? readFileSync(options.keysFile, 'utf8').split('\n').filter(Boolean)
    : [];
  let next = 0;
  const result = await autocannon({
    url,
    connections: options.connections,
    duration: options.seconds,
    headers: Object.fromEntries(headers),
    ...(options.rate !== undefined ? { overallRate: options.rate } : {}),
    ...(keys.length > 0
      ? {
          requests: [
            {
              setupRequest: (request: { headers?: Record<string, string> }) => {
                next = (next + 1) % keys.length;
                return {
                  ...request,
                  headers: { ...request.headers, 'x-api-key': keys[next] as string },
                };
              },
            },
          ],
        }
      : {}),
  } as autocannon.Options);
  return {
    requests: result.requests.total,
    seconds: options.seconds,
    rps: result.requests.average,
    p50ms: result.latency.p50,
    p99ms: result.latency.p99,
    non2xx: result.non2xx,
  };
}

function wrkLatency(out: string, percentile: string): number {
  const match = new RegExp(`${percentile.replace('%', '%')}\\s+([\\d.]+)(us|ms|s)`).exec(out);
  if (!match) return Number.NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
