// Splitting a dataset across ranks.
//
// DistributedSampler (training): each epoch every rank draws the same seeded
// permutation of [0, size) and takes every worldSize-th entry starting at its
// rank, so the shards are disjoint and together cover the dataset. Lengths
// are made equal (every rank must run the same number of steps, or the
// gradient all-reduce would wait forever): 'pad' (default, as torch) repeats
// the first worldSize - 1 at most entries of the permutation, 'drop' leaves
// the last size mod worldSize out. The order depends only on (seed, epoch),
// never on the world size's history, so a run resumed with another number of
// processes sees the same data per epoch.
//
// shardIndices (validation): exact, disjoint cover with lengths differing by
// at most one; the predictions are gathered afterwards, so no padding (which
// would count some cases twice in the metrics).

export interface DistributedSamplerOptions {
  rank: number;
  worldSize: number;
  shuffle?: boolean; // default true
  seed?: number; // default 0
  /** 'pad' (default): cover everything, repeat a few; 'drop': strictly disjoint, leave a few out. */
  mode?: 'pad' | 'drop';
}

/** splitmix32-style generator seeded from (seed, epoch); identical on every rank. */
function makeRng(seed: number, epoch: number): () => number {
  let s = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul((epoch >>> 0) + 0x632be5ab, 0x85ebca77)) >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
}

/** The seeded permutation of [0, n) used for `epoch` (Fisher-Yates). */
export function epochPermutation(n: number, seed: number, epoch: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  const rnd = makeRng(seed, epoch);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

export class DistributedSampler {
  readonly rank: number;
  readonly worldSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly mode: 'pad' | 'drop';
  epoch = 0;

  constructor(readonly size: number, opts: DistributedSamplerOptions) {
    const { rank, worldSize } = opts;
    if (!Number.isInteger(size) || size < 0) throw new Error(`DistributedSampler: dataset size ${size} is not a count`);
    if (!Number.isInteger(worldSize) || worldSize < 1 || !Number.isInteger(rank) || rank < 0 || rank >= worldSize)
      throw new Error(`DistributedSampler: rank ${rank} is not in [0, world size ${worldSize})`);
    this.rank = rank;
    this.worldSize = worldSize;
    this.shuffle = opts.shuffle ?? true;
    this.seed = opts.seed ?? 0;
    this.mode = opts.mode ?? 'pad';
    if (this.mode === 'drop' && size < worldSize)
      throw new Error(`DistributedSampler: ${size} samples cannot give each of ${worldSize} ranks one with mode 'drop'`);
  }

  /** Samples per rank per epoch (the same on every rank). */
  get numSamples(): number {
    return this.mode === 'pad' ? Math.ceil(this.size / this.worldSize) : Math.floor(this.size / this.worldSize);
  }

  setEpoch(epoch: number): void {
    this.epoch = epoch;
  }

  /** This rank's sample indices for the epoch (default: the one set by setEpoch). */
  indices(epoch = this.epoch): number[] {
    let order = this.shuffle ? epochPermutation(this.size, this.seed, epoch) : Array.from({ length: this.size }, (_, i) => i);
    const total = this.numSamples * this.worldSize;
    if (total > order.length) {
      if (order.length === 0) throw new Error('DistributedSampler: the dataset is empty');
      const pad: number[] = [];
      while (order.length + pad.length < total) pad.push(...order.slice(0, total - order.length - pad.length));
      order = order.concat(pad);
    } else order = order.slice(0, total);
    const out: number[] = [];
    for (let i = this.rank; i < total; i += this.worldSize) out.push(order[i]);
    return out;
  }
}

/** Validation split: indices rank, rank + worldSize, ... (disjoint, exact cover, in order). */
export function shardIndices(size: number, rank: number, worldSize: number): number[] {
  if (rank < 0 || rank >= worldSize) throw new Error(`shardIndices: rank ${rank} is not in [0, ${worldSize})`);
  const out: number[] = [];
  for (let i = rank; i < size; i += worldSize) out.push(i);
  return out;
}

/** The line the trainer prints at start: per-process and effective batch. */
export function describeBatch(batchSize: number, worldSize: number): string {
  return worldSize > 1
    ? `batch size ${batchSize} per process x ${worldSize} processes = effective batch ${batchSize * worldSize}`
    : `batch size ${batchSize}`;
}
