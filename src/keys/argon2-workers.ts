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
  worker: Worker;
  job: Job | undefined;
}

/**
 * argon2id on a fixed set of worker threads at lowered OS priority. The callers' VerifyPool
 * bounds how many jobs arrive at once; this class only spreads them over idle threads.
 * A crashed worker fails its job (the request is refused, never allowed) and is replaced.
 */
export class WorkerArgon2Hasher implements Hasher {
  private readonly slots: Slot[] = [];
  private readonly backlog: Job[] = [];
  private nextId = 0;
  private closed = false;
  /** Whether the OS accepted the lower priority (false off Linux or without permission). */
  niced: boolean | undefined;

  constructor(
    private readonly params: Argon2Params,
    threads: number,
  ) {
    for (let i = 0; i < threads; i++) this.slots.push(this.spawn());
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
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private submit(spec: Omit<Job, 'id' | 'resolve' | 'reject'>): Promise<string | boolean> {
    if (this.closed) return Promise.reject(new Error('argon2 workers are closed'));
    return new Promise((resolve, reject) => {
      const job: Job = { ...spec, id: this.nextId++, resolve, reject };
      const idle = this.slots.find((s) => s.job === undefined);
      if (idle) this.run(idle, job);
      else this.backlog.push(job);
    });
  }

  private run(slot: Slot, job: Job): void {
    slot.job = job;
    slot.worker.postMessage({
      id: job.id,
      op: job.op,
      phc: job.phc,
      key: job.key,
      params: job.params,
    });
  }

  private spawn(): Slot {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { module: ARGON2_MODULE, nice: ARGON2_THREAD_NICE },
    });
    // Workers must never keep a shutting-down process alive.
    worker.unref();
    const slot: Slot = { worker, job: undefined };
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
        if (job === undefined || job.id !== msg.id) return;
        slot.job = undefined;
        if (msg.error !== undefined) job.reject(new Error(`argon2: ${msg.error}`));
        else job.resolve(msg.result as string | boolean);
        const next = this.backlog.shift();
        if (next) this.run(slot, next);
      },
    );
    worker.on('error', (err) => this.replace(slot, err));
    worker.on('exit', (code) => {
      if (!this.closed) this.replace(slot, new Error(`argon2 worker exited with code ${code}`));
    });
    return slot;
  }

  private replace(slot: Slot, err: Error): void {
    const index = this.slots.indexOf(slot);
    if (index === -1) return;
    slot.job?.reject(err);
    slot.job = undefined;
    if (this.closed) return;
    const fresh = this.spawn();
    this.slots[index] = fresh;
    const next = this.backlog.shift();
    if (next) this.run(fresh, next);
  }
}
