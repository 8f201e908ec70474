// Loading one case: decode the image (and mask), derive voxel boxes, apply the
// deterministic pre-processing. The result is what the cache keeps.
import { readNifti } from '../io/nifti.js';
import { boxesWorldToVoxel } from '../io/affine.js';
import type { Affine, VoxelArray } from '../io/volume.js';
import { boxesFromSegmentation, type Connectivity } from './boxes_from_mask.js';
import type { CaseSource } from './dataset.js';
import { spatialPreprocess, volumeStats, type SpatialPreprocessOptions } from './preprocess.js';

export interface PrepareOptions extends SpatialPreprocessOptions {
  /** Mask components smaller than this many voxels are dropped (default 10). */
  minSize?: number;
  connectivity?: Connectivity;
  /** Mask value → class (plain object so it can be sent to worker threads). Default v → v − 1. */
  classMap?: Record<number, number>;
  /** Largest allowed |difference| between image and label affine entries (default 1e-3). */
  affineTolerance?: number;
  /** Compute mean/std for z-score normalisation (default true). */
  stats?: boolean;
}

/** A decoded, pre-processed case (image values still in file units; normalisation happens per patch). */
export interface PreparedCase {
  id: string;
  imagePath: string;
  data: VoxelArray;
  dims: [number, number, number];
  affine: Affine;
  spacing: [number, number, number];
  orientation: string;
  /** Voxel boxes (edge coordinates) after pre-processing. */
  boxes: Float32Array;
  labels: Int32Array;
  /** True when the case has no box (kept as a negative). */
  negative: boolean;
  /** Mask components dropped for being smaller than minSize. */
  droppedSmall: number;
  stats?: { mean: number; std: number };
}

function maxAffineDiff(a: Affine, b: Affine): number {
  let d = 0;
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) d = Math.max(d, Math.abs(a[r][c] - b[r][c]));
  return d;
}

export async function prepareCase(src: CaseSource, opts: PrepareOptions = {}): Promise<PreparedCase> {
  const image = await readNifti(src.image);
  let boxes: Float32Array;
  let labels: Int32Array;
  let dropped = 0;
  if (src.label) {
    const mask = await readNifti(src.label);
    if (mask.dims.some((d, a) => d !== image.dims[a])) {
      throw new Error(`${src.label}: label dims ${mask.dims.join('x')} differ from image ${src.image} dims ${image.dims.join('x')}`);
    }
    const diff = maxAffineDiff(mask.affine, image.affine);
    if (diff > (opts.affineTolerance ?? 1e-3)) {
      throw new Error(
        `${src.label}: label affine differs from image ${src.image} affine by up to ${diff.toPrecision(3)} ` +
          `(label ${JSON.stringify(mask.affine.slice(0, 3))}, image ${JSON.stringify(image.affine.slice(0, 3))}); ` +
          'resample the label onto the image grid',
      );
    }
    const res = boxesFromSegmentation(mask, { minSize: opts.minSize, connectivity: opts.connectivity, classMap: opts.classMap });
    boxes = res.boxes;
    labels = res.labels;
    dropped = res.dropped;
  } else if (src.worldBoxes) {
    // World (mm) → voxel through the inverse affine, corners directly (MONAI's AffineBoxToImageCoordinate).
    boxes = boxesWorldToVoxel(image.affine, src.worldBoxes);
    labels = src.boxLabels ?? new Int32Array(boxes.length / 6);
  } else {
    boxes = new Float32Array(0);
    labels = new Int32Array(0);
  }
  // The mask itself is not needed further: boxes already carry the annotation.
  const sp = spatialPreprocess(image, boxes, opts);
  const data = sp.image.data;
  return {
    id: src.id,
    imagePath: src.image,
    data,
    dims: sp.image.dims,
    affine: sp.image.affine,
    spacing: sp.spacing,
    orientation: sp.orientation,
    boxes: sp.boxes,
    labels,
    negative: labels.length === 0,
    droppedSmall: dropped,
    stats: opts.stats === false ? undefined : volumeStats(data),
  };
}
