// Task handling shared by the loader's worker threads and its in-process mode
// (workers: 0). Tasks and results are plain data; results list the buffers
// that can be transferred (zero-copy) back to the main thread.
import type { CaseSource } from './dataset.js';
import { prepareCase, type PrepareOptions } from './prepare.js';
import { shareCase, openCase, openCaseLazy, readCacheEntry, cacheFileFor, type SharedCase } from './cache.js';
import { makeTrainBatch, makeValidationItem, type CachedCase, type PipelineOptions } from './pipeline.js';

export type Task =
  | { kind: 'prepare'; source: CaseSource; opts: PrepareOptions; cacheDir?: string }
  | { kind: 'setCases'; cases: SharedCase[] }
  | { kind: 'train'; caseIndex: number; opts: PipelineOptions; seed: number; seedPath: number[] }
  | { kind: 'validation'; caseIndex: number; opts: PipelineOptions };

export interface TaskResult {
  value: unknown;
  transfer: ArrayBuffer[];
}

/** Per-thread state: the case table. */
export class WorkerState {
  cases: SharedCase[] = [];

  /** Training view of a case: shared memory, or slab-wise reads of its cache file. */
  open(index: number, whole = false): CachedCase {
    const s = this.cases[index];
    if (!s) throw new Error(`loader: no case #${index} (the worker has ${this.cases.length})`);
    return whole ? openCase(s) : openCaseLazy(s);
  }

  async handle(task: Task): Promise<TaskResult> {
    switch (task.kind) {
      case 'prepare': {
        const file = task.cacheDir ? cacheFileFor(task.cacheDir, task.source, task.opts) : undefined;
        if (file) {
          const hit = readCacheEntry(file);
          if (hit) return { value: hit, transfer: [] };
        }
        const p = await prepareCase(task.source, task.opts);
        return { value: shareCase(p, file), transfer: [] };
      }
      case 'setCases':
        this.cases = task.cases;
        return { value: true, transfer: [] };
      case 'train': {
        const c = this.open(task.caseIndex);
        try {
          const b = makeTrainBatch(c, task.opts, task.seed, task.seedPath);
          return { value: b, transfer: [b.images.buffer as ArrayBuffer, ...b.boxes.map((x) => x.buffer as ArrayBuffer), ...b.labels.map((x) => x.buffer as ArrayBuffer)] };
        } catch (e) {
          throw new Error(`${c.imagePath} (case ${c.id}): ${(e as Error).message}`);
        }
      }
      case 'validation': {
        const c = this.open(task.caseIndex, true);
        try {
          const v = makeValidationItem(c, task.opts);
          return { value: v, transfer: [v.images.buffer as ArrayBuffer] };
        } catch (e) {
          throw new Error(`${c.imagePath} (case ${c.id}): ${(e as Error).message}`);
        }
      }
    }
  }
}
