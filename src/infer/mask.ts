// Label map of detected boxes (for `--save_mask`): a volume the size of the
// input in which each detection's box is painted with an integer value.
import type { Affine, Volume } from '../io/volume.js';
import { checkDetections, type Detections } from './export.js';

export interface LabelMapOptions {
  /** Paint detections with score >= this (default 0: all). */
  scoreThreshold?: number;
  /**
   * 'rank' (default): value = 1 + the detection's rank by descending score
   * (1 = most confident), so the value indexes the exported JSON/CSV order.
   * 'class': value = label + 1 (0 stays background).
   */
  value?: 'rank' | 'class';
}

/**
 * Rasterises boxes into a label map of size dims (x fastest). Voxel i (centre
 * at integer i) is inside [x1, x2) when x1 <= i < x2, i.e. voxels
 * ceil(x1) .. ceil(x2) - 1, clipped to the volume. Where boxes overlap the
 * higher-scoring detection wins. Background is 0. The array is Uint8 when the
 * largest value fits in 255, else Uint16 (more than 65535 values is an error).
 */
export function boxesToLabelMap(
  dims: readonly [number, number, number],
  dets: Detections,
  opts: LabelMapOptions = {},
): Uint8Array | Uint16Array {
  const [X, Y, Z] = dims;
  if (![X, Y, Z].every((d) => Number.isInteger(d) && d > 0)) throw new Error(`boxesToLabelMap: dims must be positive integers, got ${dims.join('x')}`);
  const n = checkDetections(dets);
  const thr = opts.scoreThreshold ?? 0;
  const mode = opts.value ?? 'rank';
  if (mode !== 'rank' && mode !== 'class') throw new Error(`boxesToLabelMap: value must be 'rank' or 'class', got '${mode}'`);
  // Descending score; equal scores keep input order.
  const order = Array.from({ length: n }, (_, i) => i)
    .filter((i) => dets.scores[i] >= thr)
    .sort((a, b) => dets.scores[b] - dets.scores[a] || a - b);
  const values = order.map((i, rank) => (mode === 'rank' ? rank + 1 : dets.labels[i] + 1));
  let maxValue = 0;
  values.forEach((v, k) => {
    if (mode === 'class' && v < 1) throw new Error(`boxesToLabelMap: detection ${order[k]} has label ${v - 1}; labels must be >= 0`);
    maxValue = Math.max(maxValue, v);
  });
  if (maxValue > 65535) throw new Error(`boxesToLabelMap: ${maxValue} values do not fit in uint16; raise scoreThreshold`);
  const out = maxValue <= 255 ? new Uint8Array(X * Y * Z) : new Uint16Array(X * Y * Z);
  // Paint least confident first so that the most confident detection wins.
  for (let k = order.length - 1; k >= 0; k--) {
    const b = dets.boxes.subarray(6 * order[k], 6 * order[k] + 6);
    const lo = [0, 1, 2].map((a) => Math.max(0, Math.ceil(b[a])));
    const hi = [0, 1, 2].map((a) => Math.min(dims[a], Math.ceil(b[3 + a])));
    const v = values[k];
    for (let z = lo[2]; z < hi[2]; z++) {
      for (let y = lo[1]; y < hi[1]; y++) {
        const row = X * (y + Y * z);
        out.fill(v, row + lo[0], Math.max(row + lo[0], row + hi[0]));
      }
    }
  }
  return out;
}

/** The label map as a Volume with the source volume's affine (ready for writeNifti). */
export function labelMapVolume(
  dims: readonly [number, number, number],
  affine: Affine,
  dets: Detections,
  opts: LabelMapOptions = {},
): Volume {
  return { data: boxesToLabelMap(dims, dets, opts), dims: [dims[0], dims[1], dims[2]], affine: affine.map((r) => r.slice()) };
}
