// Training and validation loaders.
//
//   const loader = await createTrainLoader({ cases, patchSize: [192, 192, 80], batchSize: 4, workers: 3, seed: 1 });
//   for (let epoch = 0; epoch < 100; epoch++)
//     for await (const batch of loader.epoch(epoch)) train(batch);
//   await loader.close();
//
// Creation decodes and pre-processes every case once, in parallel on the
// worker threads, into the cache (shared memory by default, or raw files in
// `cacheDir`). Each epoch then visits every training case once in a seeded
// shuffled order; each visit is one batch of `batchSize` augmented patches of
// that case (MONAI's num_samples). Batches are produced ahead by the workers
// (at most `prefetch` outstanding) and their buffers are transferred, not
// copied. Batch (epoch e, case c) depends only on (seed, e, c): results do not
// depend on the number of workers.
import { cpus } from 'node:os';
import type { CaseSource } from './dataset.js';
import type { PrepareOptions } from './prepare.js';
import type { SharedCase } from './cache.js';
import type { Batch, PipelineOptions, ValidationItem } from './pipeline.js';
import { TaskPool, CancelledError, type CancelToken } from './pool.js';
import { Rng } from './rng.js';

export interface LoaderOptions extends PipelineOptions, PrepareOptions {
  cases: CaseSource[];
  /** Worker threads (default: cores − 1, at least 1); 0 runs everything on the calling thread. */
  workers?: number;
  /** Batches produced ahead of the consumer (default 2 × workers, at least 2). */
  prefetch?: number;
  seed?: number;
  /** Shuffle the case order each epoch (training default true). */
  shuffle?: boolean;
  /** Keep cases without any box as negatives (default true); when false they are dropped and reported. */
  keepNegatives?: boolean;
  /** Cache folder for pre-processed volumes (raw files, reused across runs); default: shared memory. */
  cacheDir?: string;
  /** Called after each case is prepared. */
  onPrepared?: (done: number, total: number, id: string) => void;
}

export interface LoaderReport {
  cases: number;
  /** Ids of cases without any box. */
  negatives: string[];
  /** Negatives removed because keepNegatives was false. */
  droppedNegatives: string[];
  /** Mask components dropped for being smaller than minSize, over all cases. */
  droppedSmallComponents: number;
}

export interface CaseInfo {
  id: string;
  imagePath: string;
  dims: [number, number, number];
  spacing: [number, number, number];
  orientation: string;
  boxes: number;
  negative: boolean;
}

const PREPARE_KEYS = ['orientation', 'spacing', 'minSize', 'connectivity', 'classMap', 'affineTolerance', 'stats'] as const;
const PIPELINE_KEYS = ['patchSize', 'batchSize', 'intensity', 'augment', 'minBoxSide', 'padValue'] as const;

function pick<T extends object>(o: T, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if ((o as Record<string, unknown>)[k] !== undefined) out[k] = (o as Record<string, unknown>)[k];
  return out;
}

class CaseLoader {
  protected pool: TaskPool;
  protected shared: SharedCase[];
  protected pipeline: PipelineOptions;
  readonly report: LoaderReport;
  readonly prefetch: number;

  protected constructor(pool: TaskPool, shared: SharedCase[], opts: LoaderOptions, report: LoaderReport) {
    this.pool = pool;
    this.shared = shared;
    this.pipeline = pick(opts, PIPELINE_KEYS) as PipelineOptions;
    this.report = report;
    this.prefetch = Math.max(2, opts.prefetch ?? 2 * Math.max(1, pool.size));
  }

  protected static async build(opts: LoaderOptions): Promise<{ pool: TaskPool; shared: SharedCase[]; report: LoaderReport }> {
    if (!opts || !Array.isArray(opts.cases) || opts.cases.length === 0) throw new Error('loader: `cases` must be a non-empty list of case sources');
    const workers = opts.workers ?? Math.max(1, cpus().length - 1);
    const pool = await TaskPool.create(workers, import.meta.url);
    try {
      const prep = pick(opts, PREPARE_KEYS) as PrepareOptions;
      // Volume mean/std cost two passes over every voxel: only z-score normalisation needs them.
      if (prep.stats === undefined) prep.stats = opts.intensity?.mode === 'zscore';
      let done = 0;
      const all = (await Promise.all(opts.cases.map(async (source) => {
        const s = (await pool.run({ kind: 'prepare', source, opts: prep, cacheDir: opts.cacheDir })) as SharedCase;
        opts.onPrepared?.(++done, opts.cases.length, source.id);
        return s;
      })));
      const negatives = all.filter((c) => c.negative).map((c) => c.id);
      const keep = opts.keepNegatives ?? true;
      const shared = keep ? all : all.filter((c) => !c.negative);
      if (shared.length === 0) throw new Error('loader: no case left (all cases are negatives and keepNegatives is false)');
      await pool.broadcast({ kind: 'setCases', cases: shared });
      const report: LoaderReport = {
        cases: shared.length,
        negatives,
        droppedNegatives: keep ? [] : negatives,
        droppedSmallComponents: all.reduce((s, c) => s + c.droppedSmall, 0),
      };
      return { pool, shared, report };
    } catch (e) {
      await pool.close();
      throw e;
    }
  }

  get cases(): CaseInfo[] {
    return this.shared.map((c) => ({
      id: c.id, imagePath: c.imagePath, dims: c.dims, spacing: c.spacing, orientation: c.orientation,
      boxes: c.labels.length, negative: c.negative,
    }));
  }

  /** Runs tasks in order with at most `prefetch` outstanding, yielding results in order. */
  protected async *ordered<T>(count: number, makeTask: (i: number) => Parameters<TaskPool['run']>[0]): AsyncGenerator<T> {
    const token: CancelToken = { cancelled: false };
    const pending: Array<Promise<unknown> | undefined> = [];
    let next = 0;
    try {
      for (let i = 0; i < count; i++) {
        while (next < count && next < i + this.prefetch) {
          const p = this.pool.run(makeTask(next), token);
          p.catch(() => {}); // observed when consumed; avoids unhandled rejections for prefetched work
          pending[next++] = p;
        }
        const v = (await pending[i]) as T;
        pending[i] = undefined;
        yield v;
      }
    } finally {
      token.cancelled = true; // queued tasks of an abandoned epoch are dropped
    }
  }

  /** Stops the worker threads. */
  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * One process's share of each epoch in data-parallel training (as torch's
 * DistributedSampler with padding): the epoch's case order is padded by
 * repeating its first entries to a multiple of worldSize, and rank r takes
 * positions r, r + worldSize, ... So every rank has the same number of
 * batches, the shards are disjoint except for the padding, and they depend
 * only on (seed, epoch), not on the world size's history.
 */
export interface EpochShard {
  rank: number;
  worldSize: number;
}

export class TrainLoader extends CaseLoader {
  readonly seed: number;
  readonly shuffle: boolean;

  private constructor(pool: TaskPool, shared: SharedCase[], opts: LoaderOptions, report: LoaderReport) {
    super(pool, shared, opts, report);
    this.seed = opts.seed ?? 0;
    this.shuffle = opts.shuffle ?? true;
  }

  static async create(opts: LoaderOptions): Promise<TrainLoader> {
    const { pool, shared, report } = await CaseLoader.build(opts);
    return new TrainLoader(pool, shared, opts, report);
  }

  /** Batches per epoch: one per training case. */
  get batchesPerEpoch(): number {
    return this.shared.length;
  }

  /** Batches per epoch of one rank of `worldSize` (see EpochShard). */
  batchesPerShard(worldSize: number): number {
    return Math.ceil(this.shared.length / worldSize);
  }

  /** Case order of an epoch (indices into `cases`); with `shard`, that rank's part of it. */
  epochOrder(epoch: number, shard?: EpochShard): number[] {
    const idx = this.shared.map((_, i) => i);
    const order = this.shuffle ? new Rng(this.seed, 0xe90c, epoch).shuffle(idx) : idx;
    if (!shard || shard.worldSize === 1) return order;
    const { rank, worldSize } = shard;
    if (!Number.isInteger(worldSize) || worldSize < 1 || !Number.isInteger(rank) || rank < 0 || rank >= worldSize)
      throw new Error(`TrainLoader: shard rank ${rank} is not in [0, world size ${worldSize})`);
    const out: number[] = [];
    const total = this.batchesPerShard(worldSize) * worldSize;
    for (let i = rank; i < total; i += worldSize) out.push(order[i % order.length]);
    return out;
  }

  /**
   * The batches of one epoch, in a seeded order (with `shard`: this rank's
   * share, see EpochShard). Breaking out of the loop cancels the queued work.
   */
  epoch(epoch: number, shard?: EpochShard): AsyncGenerator<Batch> {
    return this.stream(epoch, 1, shard);
  }

  /**
   * The batches of epochs fromEpoch .. fromEpoch + epochs − 1 as one stream,
   * prefetching across epoch boundaries (batchesPerEpoch batches per epoch).
   */
  stream(fromEpoch: number, epochs: number, shard?: EpochShard): AsyncGenerator<Batch> {
    const per = shard ? this.batchesPerShard(shard.worldSize) : this.shared.length;
    const orders = new Map<number, number[]>();
    const orderOf = (e: number) => {
      if (!orders.has(e)) {
        orders.clear();
        orders.set(e, this.epochOrder(e, shard));
      }
      return orders.get(e)!;
    };
    return this.ordered<Batch>(per * epochs, (i) => {
      const e = fromEpoch + Math.floor(i / per);
      const c = orderOf(e)[i % per];
      return { kind: 'train', caseIndex: c, opts: this.pipeline, seed: this.seed, seedPath: [e, c] };
    });
  }
}

export class ValidationLoader extends CaseLoader {
  private constructor(pool: TaskPool, shared: SharedCase[], opts: LoaderOptions, report: LoaderReport) {
    super(pool, shared, opts, report);
  }

  static async create(opts: LoaderOptions): Promise<ValidationLoader> {
    const { pool, shared, report } = await CaseLoader.build(opts);
    return new ValidationLoader(pool, shared, opts, report);
  }

  /**
   * Every validation case once, in order (or the cases at `indices`, in that
   * order: one rank's share in sharded validation): the whole normalised
   * volume, no augmentation.
   */
  items(indices?: number[]): AsyncGenerator<ValidationItem> {
    const n = this.shared.length;
    if (indices) {
      const bad = indices.find((i) => !Number.isInteger(i) || i < 0 || i >= n);
      if (bad !== undefined) throw new Error(`ValidationLoader.items: case index ${bad} is not in [0, ${n})`);
    }
    const at = indices ?? this.shared.map((_, i) => i);
    return this.ordered<ValidationItem>(at.length, (i) => ({ kind: 'validation', caseIndex: at[i], opts: this.pipeline }));
  }

  [Symbol.asyncIterator](): AsyncGenerator<ValidationItem> {
    return this.items();
  }
}

/** Prepares (decodes, caches) the cases and returns a training loader; see the file comment. */
export function createTrainLoader(opts: LoaderOptions): Promise<TrainLoader> {
  return TrainLoader.create(opts);
}

/** Prepares the cases and returns a loader of whole, normalised, un-augmented volumes. */
export function createValidationLoader(opts: LoaderOptions): Promise<ValidationLoader> {
  return ValidationLoader.create({ ...opts, augment: false });
}

export { CancelledError };
