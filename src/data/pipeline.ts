// The per-batch training pipeline and the validation item, as pure functions
// of a cached case, the options and a seed path. Worker threads run these; the
// main thread can too (workers: 0), with identical results.
import { compose, translation, resample, type Dims3 } from './resample.js';
import { transformBoxes, invertAffine } from '../io/affine.js';
import { intensityValueMap, applyValueMap, DEFAULT_INTENSITY, type IntensityOptions } from './preprocess.js';
import { resolveAugment, sampleSpatial, applyIntensityAugment, type AugmentOptions } from './augment.js';
import { chooseCrop, clipBoxes } from './patch.js';
import { Rng } from './rng.js';
import type { Affine, VoxelArray } from '../io/volume.js';

/** What the pipeline needs from a cached case (a PreparedCase or its shared-memory view). */
export interface CachedCase {
  id: string;
  imagePath: string;
  /** All voxels (x fastest), or null when the case is read slab by slab through readSlab. */
  data: VoxelArray | null;
  /** Slices z0 .. z1 − 1 of the volume (for disk-cached cases: only what a patch needs is read). */
  readSlab?: (z0: number, z1: number) => VoxelArray;
  dims: [number, number, number];
  affine: Affine;
  boxes: Float32Array;
  labels: Int32Array;
  stats?: { mean: number; std: number };
}

export interface PipelineOptions {
  /** Patch size (x, y, z), default [192, 192, 80]. */
  patchSize?: [number, number, number];
  /** Patches per volume (MONAI's num_samples = batch_size), default 4. */
  batchSize?: number;
  /** Intensity normalisation, default ScaleIntensityRange −1024..300 → 0..1, clipped. */
  intensity?: IntensityOptions;
  /** Augmentations (defaults in augment.ts); false disables all. */
  augment?: AugmentOptions | false;
  /** Boxes thinner than this (voxels) after clipping to the patch are removed. Default 1. */
  minBoxSide?: number;
  /** Normalised value used outside the volume (padding). Default: the normalised value of the range minimum (b_min) or 0. */
  padValue?: number;
}

export interface Batch {
  /** [B, Z, Y, X] float32 patches, x fastest: the tensor [B, D1, D2, D3, 1]. */
  images: Float32Array;
  patchSize: [number, number, number];
  /** Per patch: voxel boxes [x1,y1,z1,x2,y2,z2] in patch coordinates. */
  boxes: Float32Array[];
  labels: Int32Array[];
  caseIds: string[];
  /** Per patch: edge map from case voxel coordinates to patch coordinates (for debugging/inverse mapping). */
  maps?: Affine[];
}

function padValueFor(opts: PipelineOptions): number {
  if (opts.padValue !== undefined) return opts.padValue;
  const it = opts.intensity ?? DEFAULT_INTENSITY;
  return it.mode === 'range' ? (it.bMin ?? 0) : 0;
}

/**
 * `batchSize` augmented patches from one case. Patch i is positive (a random
 * ground-truth box inside) when i is even and the case has boxes, negative
 * (random position) otherwise. `seedPath` identifies the batch in the stream.
 */
export function makeTrainBatch(c: CachedCase, opts: PipelineOptions, seed: number, seedPath: number[]): Batch {
  const P = (opts.patchSize ?? [192, 192, 80]) as Dims3;
  const B = opts.batchSize ?? 4;
  if (P.some((p) => !(Number.isInteger(p) && p >= 1))) throw new Error(`patchSize must be three positive integers (x, y, z), got ${JSON.stringify(P)}`);
  const n = P[0] * P[1] * P[2];
  const images = new Float32Array(B * n);
  const vm = intensityValueMap(opts.intensity ?? DEFAULT_INTENSITY, c.stats);
  const aug = resolveAugment(opts.augment);
  const pad = padValueFor(opts);
  const out: Batch = { images, patchSize: [...P], boxes: [], labels: [], caseIds: [], maps: [] };
  for (let i = 0; i < B; i++) {
    const rng = new Rng(seed, ...seedPath, i);
    const sp = sampleSpatial(rng, P, aug.spatial);
    const start = chooseCrop(rng, c.dims, sp.cropSize, c.boxes, i % 2 === 0);
    const map = compose(translation([-start[0], -start[1], -start[2]]), sp.map);
    const patch = images.subarray(i * n, (i + 1) * n);
    const src = sourceFor(c, map, P);
    resample(src.data, src.dims, src.map, P, { mode: 'linear', pad, valueMap: vm, out: patch });
    applyIntensityAugment(patch, P, rng, aug.intensity);
    const clipped = clipBoxes(transformBoxes(map, c.boxes), c.labels, P, opts.minBoxSide ?? 1);
    out.boxes.push(clipped.boxes);
    out.labels.push(clipped.labels);
    out.caseIds.push(c.id);
    out.maps!.push(map);
  }
  return out;
}

/**
 * The voxels a patch reads: the whole volume, or just the z-slab the patch
 * touches (its source region through the inverse map, plus one slice each
 * side for the interpolation neighbours) with the map shifted onto the slab.
 */
function sourceFor(c: CachedCase, map: Affine, P: Dims3): { data: VoxelArray; dims: Dims3; map: Affine } {
  if (c.data) return { data: c.data, dims: c.dims, map };
  if (!c.readSlab) throw new Error(`case ${c.id} has neither voxels nor a slab reader`);
  const Z = c.dims[2];
  const region = transformBoxes(invertAffine(map), [0, 0, 0, P[0], P[1], P[2]]);
  let z0 = Math.min(Math.max(Math.floor(region[2]) - 1, 0), Z - 1);
  const z1 = Math.min(Math.max(Math.ceil(region[5]) + 1, z0 + 1), Z);
  z0 = Math.min(z0, z1 - 1);
  return { data: c.readSlab(z0, z1), dims: [c.dims[0], c.dims[1], z1 - z0], map: compose(translation([0, 0, z0]), map) };
}

export interface ValidationItem {
  /** [1, Z, Y, X] float32 normalised whole volume. */
  images: Float32Array;
  /** Volume size (x, y, z) (named like the batch field so consumers can treat both alike). */
  patchSize: [number, number, number];
  boxes: Float32Array[];
  labels: Int32Array[];
  caseIds: string[];
  affine: Affine;
}

/** A whole pre-processed volume, normalised, no augmentation. */
export function makeValidationItem(c: CachedCase, opts: PipelineOptions): ValidationItem {
  const vm = intensityValueMap(opts.intensity ?? DEFAULT_INTENSITY, c.stats);
  return {
    images: applyValueMap(c.data ?? c.readSlab!(0, c.dims[2]), vm),
    patchSize: [...c.dims],
    boxes: [Float32Array.from(c.boxes)],
    labels: [Int32Array.from(c.labels)],
    caseIds: [c.id],
    affine: c.affine,
  };
}
