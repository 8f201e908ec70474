// Box operations, box coder and NMS on flat Float32Arrays of boxes
// [x1, y1, z1, x2, y2, z2] (voxel units, MONAI StandardMode: [x1, x2), size = x2 - x1).
import { native } from '../native.js';
import type { Triple } from '../tensor.js';

/** Box coder weights (wx, wy, wz, ww, wh, wd); MONAI's default is all ones. */
export type BoxCoderWeights = [number, number, number, number, number, number];
export const DEFAULT_BOX_CODER_WEIGHTS: BoxCoderWeights = [1, 1, 1, 1, 1, 1];

function f32(a: ArrayLike<number>, what: string): Float32Array {
  if (a instanceof Float32Array) return a;
  if (a && typeof a.length === 'number') return Float32Array.from(a);
  throw new Error(`${what} must be a Float32Array (or an array of numbers)`);
}
function i32(a: ArrayLike<number>, what: string): Int32Array {
  if (a instanceof Int32Array) return a;
  if (a && typeof a.length === 'number') {
    const out = Int32Array.from(a);
    for (let i = 0; i < a.length; i++)
      if (out[i] !== a[i]) throw new Error(`${what} must hold 32-bit integers; element ${i} is ${a[i]}`);
    return out;
  }
  throw new Error(`${what} must be an Int32Array (or an array of integers)`);
}
/** @internal */
export const toF32 = f32;
/** @internal */
export const toI32 = i32;

/** Number of boxes in a flat array (throws unless its length is a multiple of 6). */
export function count(boxes: ArrayLike<number>): number {
  if (boxes.length % 6 !== 0)
    throw new Error(`box arrays hold 6 numbers per box [x1, y1, z1, x2, y2, z2]; got length ${boxes.length}`);
  return boxes.length / 6;
}

/** Pairwise IoU, row-major Float32Array(n*m): intersection / (union + 2^-23). */
export function iou(a: ArrayLike<number>, b: ArrayLike<number>): Float32Array {
  return native.detIou(f32(a, 'boxes.iou a'), f32(b, 'boxes.iou b'));
}

/** Pairwise generalised IoU, row-major Float32Array(n*m), in [-1, 1]. */
export function giou(a: ArrayLike<number>, b: ArrayLike<number>): Float32Array {
  return native.detGiou(f32(a, 'boxes.giou a'), f32(b, 'boxes.giou b'));
}

/** Copy of the boxes with every coordinate clamped to [0, imageSize] of its axis (x, y, z). */
export function clip(boxes: ArrayLike<number>, imageSize: Triple): Float32Array {
  return native.detClip(f32(boxes, 'boxes.clip boxes'), imageSize);
}

/**
 * Removes boxes smaller than `minSize` (default 1 voxel) on any axis; returns
 * the remaining boxes and their indices in the input.
 */
export function removeSmall(boxes: ArrayLike<number>, minSize = 1): { boxes: Float32Array; keep: Int32Array } {
  const b = f32(boxes, 'boxes.removeSmall boxes');
  const keep: Int32Array = native.detKeepNonSmall(b, minSize);
  const out = new Float32Array(keep.length * 6);
  keep.forEach((k, i) => out.set(b.subarray(6 * k, 6 * k + 6), 6 * i));
  return { boxes: out, keep };
}

/**
 * Greedy NMS: visits boxes by descending score (ties: lower index first) and
 * suppresses a box when its IoU with an already kept box is > iouThreshold.
 * Returns the kept indices in descending score order (at most maxKeep).
 */
export function nms(boxes: ArrayLike<number>, scores: ArrayLike<number>, iouThreshold: number, maxKeep?: number): Int32Array {
  return native.detNms(f32(boxes, 'boxes.nms boxes'), f32(scores, 'boxes.nms scores'), iouThreshold, maxKeep ?? null);
}

/** Per-class NMS: like `nms`, but boxes only suppress boxes with the same label. */
export function batchedNms(
  boxes: ArrayLike<number>,
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  iouThreshold: number,
  maxKeep?: number,
): Int32Array {
  return native.detBatchedNms(
    f32(boxes, 'boxes.batchedNms boxes'),
    f32(scores, 'boxes.batchedNms scores'),
    i32(labels, 'boxes.batchedNms labels'),
    iouThreshold,
    maxKeep ?? null,
  );
}

/**
 * Encodes GT boxes against anchors (paired, same count) into deltas
 * (dx, dy, dz, dw, dh, dd): (c_gt - c_a) / s_a * w and log(s_gt / s_a) * w.
 */
export function encode(anchors: ArrayLike<number>, gt: ArrayLike<number>, weights: BoxCoderWeights = DEFAULT_BOX_CODER_WEIGHTS): Float32Array {
  return native.detEncode(f32(anchors, 'boxes.encode anchors'), f32(gt, 'boxes.encode gt'), weights);
}

/** Inverse of `encode`; the log-size term is clamped from above at log(1000/16). */
export function decode(anchors: ArrayLike<number>, deltas: ArrayLike<number>, weights: BoxCoderWeights = DEFAULT_BOX_CODER_WEIGHTS): Float32Array {
  return native.detDecode(f32(anchors, 'boxes.decode anchors'), f32(deltas, 'boxes.decode deltas'), weights);
}
