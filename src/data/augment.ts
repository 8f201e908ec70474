// Random augmentation (defaults follow MONAI's LUNA16 detection training
// transforms, with the seed project's probabilities).
//
// Spatial augmentations are sampled as one composed edge map (see resample.ts)
// from the cropped region to the output patch, so the image is resampled once
// per patch and the boxes go through exactly the same map. Order, as in MONAI:
// crop → zoom (about the centre, size kept) → flips → 90° turns in x–y →
// small arbitrary rotation (about the centre, size kept).
//
// Intensity augmentations act in place on a normalised float patch, in MONAI's
// order: Gaussian noise, Gaussian smoothing, scale, shift, contrast.
import type { Affine } from '../io/volume.js';
import { compose, flipAxis, rot90xy, rotationAbout, scalingAbout, identity4, type Dims3 } from './resample.js';
import type { Rng } from './rng.js';

export interface SpatialAugmentOptions {
  /** Random isotropic zoom (MONAI RandZoomBox, keep_size). Default { prob: 0.2, min: 0.8, max: 1.2 }. */
  zoom?: { prob: number; min: number; max: number } | false;
  /** Random flip of each axis independently (RandFlipBox on axes 0, 1, 2). Default { prob: 0.5 } per axis. */
  flip?: { prob: number; axes?: [boolean, boolean, boolean] } | false;
  /** Random k·90° turn in the x–y plane, k uniform in 1..maxK (RandRotateBox90). Default { prob: 0.5, maxK: 3 }. */
  rot90?: { prob: number; maxK: number } | false;
  /** Small rotation about x, y, z, each uniform in ±range radians (RandRotate). Off by default; MONAI: { prob: 0.2, range: [π/6, π/6, π/6] }. */
  rotate?: { prob: number; range: [number, number, number] } | false;
}

export interface IntensityAugmentOptions {
  /** Additive Gaussian noise, std drawn uniformly in [0, std] (RandGaussianNoise). Default { prob: 0.1, std: 0.1 }. */
  noise?: { prob: number; std: number } | false;
  /** Gaussian smoothing, sigma per axis uniform in [min, max] (RandGaussianSmooth). Default { prob: 0.1, sigma: [0.5, 1.0] }. */
  smooth?: { prob: number; sigma: [number, number] } | false;
  /** v · (1 + f), f uniform in ±factor (RandScaleIntensity). Default { prob: 0.15, factor: 0.25 }. */
  scale?: { prob: number; factor: number } | false;
  /** v + o, o uniform in ±offset (RandShiftIntensity). Default { prob: 0.15, offset: 0.1 }. */
  shift?: { prob: number; offset: number } | false;
  /** Gamma contrast within the patch's [min, max] (RandAdjustContrast). Default { prob: 0.3, gamma: [0.7, 1.5] }. */
  contrast?: { prob: number; gamma: [number, number] } | false;
}

export interface AugmentOptions {
  spatial?: SpatialAugmentOptions;
  intensity?: IntensityAugmentOptions;
}

export const DEFAULT_SPATIAL: Required<SpatialAugmentOptions> = {
  zoom: { prob: 0.2, min: 0.8, max: 1.2 },
  flip: { prob: 0.5, axes: [true, true, true] },
  rot90: { prob: 0.5, maxK: 3 },
  rotate: false,
};
export const MONAI_ROTATE = { prob: 0.2, range: [Math.PI / 6, Math.PI / 6, Math.PI / 6] as [number, number, number] };

export const DEFAULT_INTENSITY_AUG: Required<IntensityAugmentOptions> = {
  noise: { prob: 0.1, std: 0.1 },
  smooth: { prob: 0.1, sigma: [0.5, 1.0] },
  scale: { prob: 0.15, factor: 0.25 },
  shift: { prob: 0.15, offset: 0.1 },
  contrast: { prob: 0.3, gamma: [0.7, 1.5] },
};

/** Fills unspecified augmentation options with the defaults; `false` disables one. */
export function resolveAugment(opts: AugmentOptions | false | undefined): { spatial: Required<SpatialAugmentOptions>; intensity: Required<IntensityAugmentOptions> } {
  if (opts === false) {
    return {
      spatial: { zoom: false, flip: false, rot90: false, rotate: false },
      intensity: { noise: false, smooth: false, scale: false, shift: false, contrast: false },
    };
  }
  return {
    spatial: { ...DEFAULT_SPATIAL, ...(opts?.spatial ?? {}) },
    intensity: { ...DEFAULT_INTENSITY_AUG, ...(opts?.intensity ?? {}) },
  };
}

export interface SpatialSample {
  /** Size of the region to crop from the volume (x, y, z): the patch size, with x/y swapped for odd 90° turns. */
  cropSize: Dims3;
  /** Edge map from crop-region coordinates to patch coordinates. */
  map: Affine;
  /** What was applied, for logging/tests. */
  applied: { zoom?: number; flips: number[]; rot90: number; rotate?: [number, number, number] };
}

/** Draws the spatial augmentation for one patch. */
export function sampleSpatial(rng: Rng, patchSize: Dims3, opts: Required<SpatialAugmentOptions>): SpatialSample {
  const P = patchSize;
  // 90° turns are drawn first because an odd k swaps the x/y size of the crop.
  let k = 0;
  if (opts.rot90 && rng.chance(opts.rot90.prob)) k = rng.int(1, Math.max(1, opts.rot90.maxK));
  const C: Dims3 = k % 2 ? [P[1], P[0], P[2]] : [P[0], P[1], P[2]];
  const maps: Affine[] = [];
  const applied: SpatialSample['applied'] = { flips: [], rot90: k };
  if (opts.zoom && rng.chance(opts.zoom.prob)) {
    const z = rng.uniform(opts.zoom.min, opts.zoom.max);
    applied.zoom = z;
    maps.push(scalingAbout([z, z, z], [C[0] / 2, C[1] / 2, C[2] / 2]));
  }
  if (opts.flip) {
    const axes = opts.flip.axes ?? [true, true, true];
    for (let a = 0; a < 3; a++) {
      if (axes[a] && rng.chance(opts.flip.prob)) {
        applied.flips.push(a);
        maps.push(flipAxis(a, C[a]));
      }
    }
  }
  if (k) maps.push(rot90xy(k, C[0], C[1]));
  if (opts.rotate && rng.chance(opts.rotate.prob)) {
    const r = opts.rotate.range;
    const angles: [number, number, number] = [rng.uniform(-r[0], r[0]), rng.uniform(-r[1], r[1]), rng.uniform(-r[2], r[2])];
    applied.rotate = angles;
    maps.push(rotationAbout(angles, [P[0] / 2, P[1] / 2, P[2] / 2]));
  }
  return { cropSize: C, map: maps.length ? compose(...maps) : identity4(), applied };
}

/** Adds N(0, std²) noise in place. */
export function addGaussianNoise(data: Float32Array, std: number, rng: Rng): void {
  for (let i = 0; i < data.length; i++) data[i] += std * rng.normal();
}

/** Normalised sampled Gaussian kernel with radius round(4σ) (MONAI's truncation at 4 sigma). */
export function gaussianKernel(sigma: number): Float64Array {
  const r = Math.max(1, Math.floor(4 * sigma + 0.5));
  const k = new Float64Array(2 * r + 1);
  let s = 0;
  for (let i = -r; i <= r; i++) s += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= s;
  return k;
}

/**
 * Separable Gaussian smoothing in place with zero padding (as a zero-padded
 * convolution). sigma in (x, y, z). The y and z passes combine whole rows /
 * planes (contiguous memory) instead of walking strided lines.
 */
export function gaussianSmooth(data: Float32Array, dims: Dims3, sigma: readonly number[]): void {
  const [X, Y, Z] = dims;
  const XY = X * Y;
  if (sigma[0] > 0) {
    const k = gaussianKernel(sigma[0]);
    const line = new Float32Array(X);
    for (let r = 0; r < Y * Z; r++) {
      const o = r * X;
      line.set(data.subarray(o, o + X));
      convolveLine(line, data, o, X, k);
    }
  }
  if (sigma[1] > 0) {
    const k = gaussianKernel(sigma[1]);
    const plane = new Float32Array(XY);
    for (let z = 0; z < Z; z++) {
      const o = z * XY;
      plane.set(data.subarray(o, o + XY));
      combineRows(plane, data, o, X, Y, k);
    }
  }
  if (sigma[2] > 0) {
    const k = gaussianKernel(sigma[2]);
    const copy = Float32Array.from(data);
    combineRows(copy, data, 0, XY, Z, k);
  }
}

/** out[o + i] = Σ_j k[j] · line[i + j − r] over the valid i + j − r (zero padding). */
function convolveLine(line: Float32Array, out: Float32Array, o: number, n: number, k: Float64Array): void {
  const r = (k.length - 1) / 2;
  for (let i = 0; i < n; i++) {
    const jlo = Math.max(0, r - i), jhi = Math.min(k.length - 1, n - 1 - i + r);
    let acc = 0;
    for (let j = jlo; j <= jhi; j++) acc += k[j] * line[i + j - r];
    out[o + i] = acc;
  }
}

/** Treats src as `rows` rows of `len` values; out row i = Σ_j k[j] · src row (i + j − r), zero outside. */
function combineRows(src: Float32Array, out: Float32Array, o: number, len: number, rows: number, k: Float64Array): void {
  const r = (k.length - 1) / 2;
  for (let i = 0; i < rows; i++) {
    const dst = o + i * len;
    out.fill(0, dst, dst + len);
    const jlo = Math.max(0, r - i), jhi = Math.min(k.length - 1, rows - 1 - i + r);
    for (let j = jlo; j <= jhi; j++) {
      const w = k[j];
      const s = (i + j - r) * len;
      for (let x = 0; x < len; x++) out[dst + x] += w * src[s + x];
    }
  }
}

const CONTRAST_LUT = 16384;

/**
 * MONAI RandAdjustContrast: ((v − min) / (range + 1e-7))^gamma · range + min over the patch.
 * x^γ on [0, 1] comes from a 16385-entry table with linear interpolation
 * (|error| ≤ γ|γ − 1|/8 · h^γ with h = 1/16384, below 3e-5 of the range for
 * γ in [0.7, 1.5]); the first interval, where x^γ bends most, is computed exactly.
 */
export function adjustContrast(data: Float32Array, gamma: number): void {
  let mn = Infinity, mx = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  const range = mx - mn;
  const inv = 1 / (range + 1e-7);
  const N = CONTRAST_LUT;
  const lut = new Float64Array(N + 2);
  for (let i = 0; i <= N; i++) lut[i] = Math.pow(i / N, gamma);
  lut[N + 1] = lut[N];
  for (let i = 0; i < data.length; i++) {
    const x = (data[i] - mn) * inv;
    const t = x * N;
    let y: number;
    if (t < 1) {
      y = x > 0 ? Math.exp(gamma * Math.log(x)) : 0;
    } else {
      const k = t | 0;
      y = lut[k] + (lut[k + 1] - lut[k]) * (t - k);
    }
    data[i] = y * range + mn;
  }
}

/** Applies the random intensity augmentations in place; returns what was applied. */
export function applyIntensityAugment(
  data: Float32Array, dims: Dims3, rng: Rng, opts: Required<IntensityAugmentOptions>,
): Record<string, number | number[]> {
  const applied: Record<string, number | number[]> = {};
  if (opts.noise && rng.chance(opts.noise.prob)) {
    const std = rng.uniform(0, opts.noise.std);
    applied.noise = std;
    addGaussianNoise(data, std, rng);
  }
  if (opts.smooth && rng.chance(opts.smooth.prob)) {
    const [a, b] = opts.smooth.sigma;
    const s = [rng.uniform(a, b), rng.uniform(a, b), rng.uniform(a, b)];
    applied.smooth = s;
    gaussianSmooth(data, dims, s);
  }
  if (opts.scale && rng.chance(opts.scale.prob)) {
    const f = 1 + rng.uniform(-opts.scale.factor, opts.scale.factor);
    applied.scale = f;
    for (let i = 0; i < data.length; i++) data[i] *= f;
  }
  if (opts.shift && rng.chance(opts.shift.prob)) {
    const o = rng.uniform(-opts.shift.offset, opts.shift.offset);
    applied.shift = o;
    for (let i = 0; i < data.length; i++) data[i] += o;
  }
  if (opts.contrast && rng.chance(opts.contrast.prob)) {
    const g = rng.uniform(opts.contrast.gamma[0], opts.contrast.gamma[1]);
    applied.contrast = g;
    adjustContrast(data, g);
  }
  return applied;
}
