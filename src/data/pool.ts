// A small worker_threads pool: one task in flight per worker, a FIFO queue in
// the main thread (so queued work can be cancelled and memory stays bounded),
// transferable results, and an in-process mode (0 workers) running the same
// task code on the main thread.
import { Worker } from 'node:worker_threads';
import { WorkerState, type Task } from './worker_core.js';
import { workerScriptUrl } from './worker_script.js';

export interface CancelToken {
  cancelled: boolean;
}

export class CancelledError extends Error {
  constructor() {
    super('loader: task cancelled');
  }
}

interface Job {
  task: Task;
  token?: CancelToken;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: Job | null;
  /** Tasks addressed to this worker only (broadcasts), run before the shared queue. */
  own: Job[];
}

let nextId = 1;

export class TaskPool {
  private slots: Slot[] = [];
  private queue: Job[] = [];
  private local: WorkerState | null = null;
  private broken: Error | null = null;
  private closed = false;

  private constructor() {}

  /** A pool of `n` worker threads, or the in-process mode when n = 0. */
  static async create(n: number, moduleUrl: string): Promise<TaskPool> {
    const pool = new TaskPool();
    if (!(Number.isInteger(n) && n >= 0)) throw new Error(`loader: workers must be a non-negative integer, got ${n}`);
    if (n === 0) {
      pool.local = new WorkerState();
      return pool;
    }
    const url = await workerScriptUrl(moduleUrl);
    for (let i = 0; i < n; i++) {
      const worker = new Worker(url);
      const slot: Slot = { worker, busy: null, own: [] };
      worker.unref();
      worker.on('message', (msg: { id: number; ok: boolean; value?: unknown; message?: string }) => {
        const job = slot.busy;
        slot.busy = null;
        worker.unref();
        if (job) {
          if (msg.ok) job.resolve(msg.value);
          else job.reject(new Error(msg.message));
        }
        pool.pump();
      });
      worker.on('error', (e) => pool.fail(new Error(`loader: a worker thread crashed: ${e.message}`)));
      worker.on('exit', (code) => {
        if (!pool.closed) pool.fail(new Error(`loader: a worker thread exited unexpectedly (code ${code})`));
      });
      pool.slots.push(slot);
    }
    return pool;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Runs a task on the next free worker. */
  run(task: Task, token?: CancelToken): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const job: Job = { task, token, resolve, reject };
      if (this.broken) return reject(this.broken);
      if (this.closed) return reject(new Error('loader: closed'));
      if (this.local) {
        this.runLocal(job);
        return;
      }
      this.queue.push(job);
      this.pump();
    });
  }

  /** Runs a task once on every worker (or once in-process). */
  broadcast(task: Task): Promise<unknown[]> {
    if (this.local) return this.run(task).then((v) => [v]);
    return Promise.all(this.slots.map((slot) => new Promise((resolve, reject) => {
      if (this.broken) return reject(this.broken);
      slot.own.push({ task, resolve, reject });
      this.pump();
    })));
  }

  private runLocal(job: Job): void {
    // Yield to the event loop first so in-process mode behaves asynchronously like workers.
    setImmediate(() => {
      if (job.token?.cancelled) return job.reject(new CancelledError());
      this.local!.handle(job.task).then((r) => job.resolve(r.value), (e: Error) => job.reject(e));
    });
  }

  private pump(): void {
    if (this.broken || this.closed) return;
    for (const slot of this.slots) {
      if (slot.busy) continue;
      let job = slot.own.shift();
      while (!job && this.queue.length) {
        const j = this.queue.shift()!;
        if (j.token?.cancelled) j.reject(new CancelledError());
        else job = j;
      }
      if (!job) continue;
      slot.busy = job;
      slot.worker.ref(); // keep the process alive while work is in flight
      slot.worker.postMessage({ id: nextId++, task: job.task });
    }
  }

  private fail(e: Error): void {
    if (this.broken) return;
    this.broken = e;
    for (const slot of this.slots) {
      slot.busy?.reject(e);
      slot.busy = null;
      for (const j of slot.own) j.reject(e);
      slot.own = [];
    }
    for (const j of this.queue) j.reject(e);
    this.queue = [];
    void this.close();
  }

  /** Stops all workers; queued tasks are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('loader: closed');
    for (const j of this.queue) j.reject(err);
    this.queue = [];
    await Promise.all(this.slots.map(async (s) => {
      s.busy?.reject(err);
      s.busy = null;
      await s.worker.terminate();
    }));
  }
}
