import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Argon2Params, Hasher } from './hasher.js';

const ARGON2_MODULE = createRequire(import.meta.url).resolve('@node-rs/argon2');
const ARGON2ID = 2;

/** How much lower than the event loop argon2 threads run (Linux nice; 0 = same priority). */
const ARGON2_THREAD_NICE = 10;

// Runs inside each worker. It lowers its own thread's priority first: on a small node the
// request path must win the CPU over a flood of wrong keys. /proc/thread-self gives the
// thread id, and setpriority() on a thread id affects that thread alone on Linux.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
let niced = false;
try {
  const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
  require('node:os').setPriority(tid, workerData.nice);
  niced = true;
} catch {}
const argon2 = require(workerData.module);
parentPort.postMessage({ ready: true, niced });
parentPort.on('message', (job) => {
  try {
    const result = job.op === 'verify'
      ? argon2.verifySync(job.phc, job.key)
      : argon2.hashSync(job.key, job.params);
    parentPort.postMessage({ id: job.id, result });
  } catch (err) {
    parentPort.postMessage({ id: job.id, error: String((err && err.message) || err) });
  }
});
`;

interface Job {
  id: number;
  op: 'verify' | 'hash';
  phc?: string;
  key: string;
  params?: Argon2Params & { algorithm: number };
  resolve: (value: string | boolean) => void;
  reject: (err: Error) => void;
}

interface Slot {
  /** undefined until the first job, and again after an idle stop or a crash. */
  worker: Worker | undefined;
  job: Job | undefined;
  idleTimer: NodeJS.Timeout | undefined;
}

/** How long a thread may sit without a job before it is stopped (its isolate is ~10 MB). */
export const ARGON2_IDLE_STOP_MS = 60_000;

export interface WorkerArgon2Options {
  /** Stop a thread after this long without a job; the next job starts one again. */
  idleStopMs?: number;
  /** Told the number of live threads whenever it changes (e.g. for a gauge). */
  onThreads?: (live: number) => void;
}

/**
 * argon2id on up to `threads` worker threads at lowered OS priority. The callers' VerifyPool
 * bounds how many jobs arrive at once; this class only spreads them over idle threads.
 *
 * Threads are lazy: none exists until the first job (a sidecar whose keys are all cached
 * never pays for a worker isolate), a job prefers an idle live thread over starting another,
 * and a thread with no job for `idleStopMs` is stopped. A crashed worker fails its job (the
 * request is refused, never allowed); its slot starts a fresh thread for the next job.
 */
export class WorkerArgon2Hasher implements Hasher {
  private readonly slots: Slot[] = [];
  private readonly backlog: Job[] = [];
  private nextId = 0;
  private closed = false;
  private readonly idleStopMs: number;
  private readonly onThreads: ((live: number) => void) | undefined;
  /** Whether the OS accepted the lower priority (false off Linux or without permission). */
  niced: boolean | undefined;

  constructor(
    private readonly params: Argon2Params,
    threads: number,
    options: WorkerArgon2Options = {},
  ) {
    this.idleStopMs = options.idleStopMs ?? ARGON2_IDLE_STOP_MS;
    this.onThreads = options.onThreads;
    for (let i = 0; i < Math.max(1, threads); i++)
      this.slots.push({ worker: undefined, job: undefined, idleTimer: undefined });
  }

  verify(phc: string, key: string): Promise<boolean> {
    return this.submit({ op: 'verify', phc, key }) as Promise<boolean>;
  }

  hash(key: string): Promise<string> {
    return this.submit({
      op: 'hash',
      key,
      params: { ...this.params, algorithm: ARGON2ID },
    }) as Promise<string>;
  }

  async close(): Promise<void> {
    this.closed = true;
    const closing = new Error('argon2 workers are closed');
    for (const job of this.backlog.splice(0)) job.reject(closing);
    await Promise.all(this.slots.map((slot) => this.stop(slot, closing)));
  }

  private submit(spec: Omit<Job, 'id' | 'resolve' | 'reject'>): Promise<string | boolean> {
    if (this.closed) return Promise.reject(new Error('argon2 workers are closed'));
    return new Promise((resolve, reject) => {
      const job: Job = { ...spec, id: this.nextId++, resolve, reject };
      // An idle live thread first; start another only when every live one is busy.
      const slot =
        this.slots.find((s) => s.job === undefined && s.worker !== undefined) ??
        this.slots.find((s) => s.worker === undefined);
      if (slot) this.run(slot, job);
      else this.backlog.push(job);
    });
  }

  private run(slot: Slot, job: Job): void {
    if (slot.idleTimer !== undefined) {
      clearTimeout(slot.idleTimer);
      slot.idleTimer = undefined;
    }
    if (slot.worker === undefined) {
      slot.worker = this.spawn(slot);
      this.onThreads?.(this.live());
    }
    slot.job = job;
    slot.worker.postMessage({
      id: job.id,
      op: job.op,
      phc: job.phc,
      key: job.key,
      params: job.params,
    });
  }

  /** The slot has no job: give it the next one, or start its idle countdown. */
  private next(slot: Slot): void {
    const next = this.backlog.shift();
    if (next) {
      this.run(slot, next);
      return;
    }
    if (slot.worker === undefined || this.closed) return;
    slot.idleTimer = setTimeout(() => void this.stop(slot), this.idleStopMs);
    slot.idleTimer.unref();
  }

  /** Stops the slot's thread; a job still on it is rejected with `err`. */
  private async stop(slot: Slot, err = new Error('argon2 worker stopped')): Promise<void> {
    if (slot.idleTimer !== undefined) clearTimeout(slot.idleTimer);
    slot.idleTimer = undefined;
    const worker = slot.worker;
    const job = slot.job;
    slot.worker = undefined;
    slot.job = undefined;
    job?.reject(err);
    if (worker === undefined) return;
    this.onThreads?.(this.live());
    await worker.terminate();
  }

  private live(): number {
    return this.slots.filter((s) => s.worker !== undefined).length;
  }

  private spawn(slot: Slot): Worker {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { module: ARGON2_MODULE, nice: ARGON2_THREAD_NICE },
    });
    // Workers must never keep a shutting-down process alive.
    worker.unref();
    worker.on(
      'message',
      (msg: {
        ready?: boolean;
        niced?: boolean;
        id?: number;
        result?: string | boolean;
        error?: string;
      }) => {
        if (msg.ready) {
          this.niced = msg.niced ?? false;
          return;
        }
        const job = slot.job;
        if (slot.worker !== worker || job === undefined || job.id !== msg.id) return;
        slot.job = undefined;
        if (msg.error !== undefined) job.reject(new Error(`argon2: ${msg.error}`));
        else job.resolve(msg.result as string | boolean);
        this.next(slot);
      },
    );
    // Only this slot's current thread counts: a thread stopped on purpose (idle, close) also
    // exits, after the slot has moved on.
    const crashed = (err: Error) => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      const job = slot.job;
      slot.job = undefined;
      job?.reject(err);
      this.onThreads?.(this.live());
      if (!this.closed) this.next(slot);
    };
    worker.on('error', crashed);
    worker.on('exit', (code) => crashed(new Error(`argon2 worker exited with code ${code}`)));
    return worker;
  }
}
