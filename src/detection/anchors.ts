// Anchor generation (MONAI AnchorGeneratorWithAnchorShape semantics).
import { native } from '../native.js';
import type { Triple } from '../tensor.js';

export interface AnchorOptions {
  /** Input patch / image size (x, y, z) in voxels. */
  imageSize: Triple;
  /** Feature map size (x, y, z) of every level, finest first. */
  featureMapSizes: Triple[];
  /** Base anchor shapes (x, y, z) in voxels at scale 1, e.g. [[6, 8, 4], [8, 6, 5], [10, 10, 6]]. */
  baseAnchorShapes: Triple[];
  /** Scale of each level (default 2^level: 1, 2, 4, ...). */
  featureMapScales?: number[];
}

/**
 * Anchors of every level as flat Float32Arrays of boxes [x1, y1, z1, x2, y2, z2].
 *
 * Level l multiplies each base shape s by its scale; the corners relative to
 * the centre are -round(scale*s/2) and +round(scale*s/2) (round half to even
 * on each side). The stride of a level is imageSize // featureMapSize per axis
 * and the centre of feature-map location (ix, iy, iz) is (ix*sx, iy*sy, iz*sz).
 *
 * Order within a level: index = ((iz*FY + iy)*FX + ix)*A + a, i.e.
 * location-major, base shapes fastest, x the fastest spatial axis. This is
 * exactly the order of the channels-last head outputs [N, D1=z, D2=y, D3=x, A*C].
 * MONAI orders the same way on (x, y, z) tensors, so there z varies fastest;
 * that is the only difference.
 */
export function generate(opts: AnchorOptions): Float32Array[] {
  if (!opts || typeof opts !== 'object') throw new Error('anchors.generate: options {imageSize, featureMapSizes, baseAnchorShapes} are required');
  return native.detAnchors(opts.imageSize, opts.featureMapSizes, opts.baseAnchorShapes, opts.featureMapScales ?? null);
}

/** Number of anchors per feature-map location in a level array produced by `generate`. */
export function anchorsPerLocation(level: Float32Array): number {
  // All anchors of a location share its centre (the rounding is symmetric);
  // count how many consecutive anchors share the first centre.
  const n = level.length / 6;
  if (!Number.isInteger(n) || n === 0) throw new Error('anchors.anchorsPerLocation: expected a non-empty box array (6 numbers per box)');
  const c = (i: number, k: number) => level[6 * i + k] + level[6 * i + k + 3];
  let a = 1;
  while (a < n && c(a, 0) === c(0, 0) && c(a, 1) === c(0, 1) && c(a, 2) === c(0, 2)) a++;
  return a;
}
