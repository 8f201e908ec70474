// Deterministic pre-processing, done once per volume before caching:
// reorientation to a canonical orientation, optional resampling to a target
// spacing, and the intensity normalisation parameters.
//
// Boxes are voxel boxes in edge coordinates (see resample.ts) and follow every
// step through the same edge map as the voxels.
import type { Affine, Volume, VoxelArray } from '../io/volume.js';
import { axisOrientation, parseOrientationCode, orientationCode, spacingFromAffine, transformBoxes } from '../io/affine.js';
import { affineAfterMap, resample, resampleLike, scalingAbout, type Dims3, type ValueMap } from './resample.js';

/**
 * Edge map taking a volume with `affine` and `dims` to the orientation `target`
 * (default 'RAS') by permuting and flipping axes only (no interpolation), and
 * the resulting dims.
 */
export function canonicalMap(affine: Affine, dims: readonly number[], target = 'RAS'): { map: Affine; dims: Dims3 } {
  const src = axisOrientation(affine); // per old axis: [worldAxis, sign]
  const want = parseOrientationCode(target); // per new axis: [worldAxis, sign]
  const m: Affine = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  const outDims: Dims3 = [0, 0, 0];
  for (let n = 0; n < 3; n++) {
    const a = src.findIndex(([w]) => w === want[n][0]);
    const flip = src[a][1] !== want[n][1];
    m[n][a] = flip ? -1 : 1;
    m[n][3] = flip ? dims[a] : 0;
    outDims[n] = dims[a];
  }
  return { map: m, dims: outDims };
}

/** Applies an edge map to a volume (exact for permutations/flips; `mode` otherwise) and updates the affine. */
export function mapVolume<T extends VoxelArray>(
  vol: { data: T; dims: readonly number[]; affine: Affine }, map: Affine, outDims: Dims3, mode: 'linear' | 'nearest',
): { data: T; dims: Dims3; affine: Affine } {
  return {
    data: resampleLike(vol.data, vol.dims, map, outDims, { mode }),
    dims: outDims,
    affine: affineAfterMap(vol.affine, map),
  };
}

/** Edge map and dims resampling a volume of `dims`/`spacing` to `target` spacing (grid scaled to cover the same extent). */
export function spacingMap(dims: readonly number[], spacing: readonly number[], target: readonly number[]): { map: Affine; dims: Dims3 } {
  if (target.length !== 3 || target.some((t) => !(t > 0))) throw new Error(`target spacing must be three positive numbers (x, y, z), got ${JSON.stringify(target)}`);
  const outDims = [0, 1, 2].map((a) => Math.max(1, Math.round((dims[a] * spacing[a]) / target[a]))) as Dims3;
  return { map: scalingAbout([0, 1, 2].map((a) => outDims[a] / dims[a])), dims: outDims };
}

/** Intensity normalisation: MONAI ScaleIntensityRange (CT default) or z-score (MR), or none. */
export type IntensityOptions =
  | { mode: 'range'; aMin?: number; aMax?: number; bMin?: number; bMax?: number; clip?: boolean }
  | { mode: 'zscore' }
  | { mode: 'none' };

export const DEFAULT_INTENSITY: IntensityOptions = { mode: 'range', aMin: -1024, aMax: 300, bMin: 0, bMax: 1, clip: true };

/** The point-wise map of an intensity option; z-score needs the volume's mean and std. */
export function intensityValueMap(opts: IntensityOptions, stats?: { mean: number; std: number }): ValueMap {
  if (opts.mode === 'none') return { scale: 1, offset: 0, lo: -Infinity, hi: Infinity };
  if (opts.mode === 'zscore') {
    if (!stats) throw new Error('z-score normalisation needs the volume mean and std');
    const std = stats.std > 0 ? stats.std : 1;
    return { scale: 1 / std, offset: -stats.mean / std, lo: -Infinity, hi: Infinity };
  }
  const aMin = opts.aMin ?? -1024, aMax = opts.aMax ?? 300, bMin = opts.bMin ?? 0, bMax = opts.bMax ?? 1;
  if (aMax === aMin) throw new Error(`ScaleIntensityRange: aMin and aMax must differ (both ${aMin})`);
  const scale = (bMax - bMin) / (aMax - aMin);
  const clip = opts.clip ?? true;
  return {
    scale,
    offset: bMin - aMin * scale,
    lo: clip ? Math.min(bMin, bMax) : -Infinity,
    hi: clip ? Math.max(bMin, bMax) : Infinity,
  };
}

/** Applies a value map to a whole array (float32 result). */
export function applyValueMap(data: ArrayLike<number>, vm: ValueMap, out = new Float32Array(data.length)): Float32Array {
  for (let i = 0; i < data.length; i++) {
    let v = data[i] * vm.scale + vm.offset;
    if (v < vm.lo) v = vm.lo; else if (v > vm.hi) v = vm.hi;
    out[i] = v;
  }
  return out;
}

/** Mean and (population) standard deviation of a volume, in float64. */
export function volumeStats(data: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < data.length; i++) s += data[i];
  const mean = s / data.length;
  let q = 0;
  for (let i = 0; i < data.length; i++) q += (data[i] - mean) ** 2;
  return { mean, std: Math.sqrt(q / data.length) };
}

export interface SpatialPreprocessOptions {
  /** Canonical orientation code, default 'RAS'; null keeps the file's orientation. */
  orientation?: string | null;
  /** Target spacing (x, y, z) in mm; omitted = keep the native spacing. */
  spacing?: readonly number[];
}

export interface SpatialResult {
  image: Volume;
  mask?: Volume;
  boxes: Float32Array;
  orientation: string;
  spacing: [number, number, number];
}

/**
 * Reorients (exact) and optionally resamples (trilinear image, nearest mask,
 * boxes scaled) an image with its optional mask and voxel boxes.
 */
export function spatialPreprocess(image: Volume, boxes: Float32Array, opts: SpatialPreprocessOptions = {}, mask?: Volume): SpatialResult {
  let img = image;
  let msk = mask;
  let bx = boxes;
  const target = opts.orientation === undefined ? 'RAS' : opts.orientation;
  if (target !== null && orientationCode(img.affine) !== target.toUpperCase()) {
    const { map, dims } = canonicalMap(img.affine, img.dims, target);
    img = mapVolume(img, map, dims, 'nearest');
    if (msk) msk = mapVolume(msk, map, dims, 'nearest');
    bx = transformBoxes(map, bx);
  }
  if (opts.spacing) {
    const cur = spacingFromAffine(img.affine);
    if (cur.some((c, a) => Math.abs(c - opts.spacing![a]) > 1e-6 * c)) {
      const { map, dims } = spacingMap(img.dims, cur, opts.spacing);
      const data = resample(img.data, img.dims, map, dims, { mode: 'linear' });
      img = { data: img.data instanceof Float64Array ? Float64Array.from(data) : data, dims, affine: affineAfterMap(img.affine, map) };
      if (msk) msk = mapVolume(msk, map, dims, 'nearest');
      bx = transformBoxes(map, bx);
    }
  }
  return { image: img, mask: msk, boxes: bx, orientation: orientationCode(img.affine), spacing: spacingFromAffine(img.affine) };
}
