import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
const CLOCK_TICKS =
  Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

export interface Server {
  child: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

/** Starts a server process that prints "listening <port>" and waits for that line. */
export function startServer(command: string, args: string[]): Promise<Server> {
  return new Promise((done, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout?.on('data', (c) => {
      out += c;
      const match = /listening (\d+)/.exec(out);
      if (match) {
        done({
          child,
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
  },
): Promise<LoadResult> {
  const headers = Object.entries(options.headers ?? {});
  if (options.tool === 'wrk') {
    const args = ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--latency'];
    for (const [k, v] of headers) args.push('-H', `${k}: ${v}`);
    const out = execFileSync('wrk', [...args, url], { encoding: 'utf8' });
    const requests = Number(/(\d+) requests in ([\d.]+)s/.exec(out)?.[1] ?? 0);
    const seconds = Number(/requests in ([\d.]+)s/.exec(out)?.[1] ?? options.seconds);
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
  const { default: autocannon } = await import('autocannon');
  const result = await autocannon({
    url,
    connections: options.connections,
    duration: options.seconds,
    headers: Object.fromEntries(headers),
  });
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
