// From head outputs to final detections (MONAI RetinaNetDetector.postprocess_detections).
import { native } from '../native.js';
import type { Triple } from '../tensor.js';
import type { BoxCoderWeights } from './boxes.js';
import { toF32 } from './boxes.js';
import type { HeadOutputs } from './loss.js';

export interface PostprocessOptions {
  /** Default 1. */
  numClasses?: number;
  /** Keep scores > scoreThresh (default 0.02). */
  scoreThresh?: number;
  /** Best candidates kept per level before NMS (default 1000). */
  topkCandidatesPerLevel?: number;
  /** Per-class NMS IoU threshold (default 0.22). */
  nmsThresh?: number;
  /** Detections kept per image (default 100). */
  detectionsPerImg?: number;
  /** Apply a sigmoid to the logits (default true). */
  applySigmoid?: boolean;
  /** Boxes smaller than this on any axis after clipping are dropped (default 1 voxel). */
  minSize?: number;
  /** Default [1, 1, 1, 1, 1, 1]. */
  boxCoderWeights?: BoxCoderWeights;
}

export interface Detections {
  /** 6 numbers per detection [x1, y1, z1, x2, y2, z2]. */
  boxes: Float32Array;
  /** Descending. */
  scores: Float32Array;
  labels: Int32Array;
}

function args(head: HeadOutputs, anchorsPerLevel: Float32Array[], imageSize: Triple | Triple[], opts: PostprocessOptions) {
  if (!head || !Array.isArray(head.clsLogits) || !Array.isArray(head.boxRegression))
    throw new Error('detector.postprocess: headOutputs must be { clsLogits: Tensor[], boxRegression: Tensor[] }');
  if (!Array.isArray(anchorsPerLevel)) throw new Error('detector.postprocess: anchorsPerLevel must be an array of Float32Array');
  if (!Array.isArray(imageSize)) throw new Error('detector.postprocess: imageSize must be (x, y, z) or one (x, y, z) per image');
  const sizes = Array.isArray(imageSize[0]) ? (imageSize as Triple[]) : [imageSize as Triple];
  return [
    head.clsLogits.map((t) => t.handle),
    head.boxRegression.map((t) => t.handle),
    anchorsPerLevel.map((a, i) => toF32(a, `detector.postprocess anchors[${i}]`)),
    sizes,
    { ...opts },
  ];
}

/**
 * Detections per image: sigmoid scores; per level keep scores > scoreThresh
 * and the topkCandidatesPerLevel best; decode; clip to [0, imageSize]; drop
 * boxes thinner than minSize; per-class NMS at nmsThresh over all levels;
 * keep the detectionsPerImg best (sorted by descending score).
 * `imageSize` is (x, y, z) for all images or one (x, y, z) per image.
 */
export function postprocess(
  headOutputs: HeadOutputs,
  anchorsPerLevel: Float32Array[],
  imageSize: Triple | Triple[],
  opts: PostprocessOptions = {},
): Detections[] {
  return native.detPostprocess(...args(headOutputs, anchorsPerLevel, imageSize, opts));
}

/**
 * Same as `postprocess`, computed on a worker thread. The anchor arrays and
 * head output tensors are used in place: do not modify them until it settles.
 */
export async function postprocessAsync(
  headOutputs: HeadOutputs,
  anchorsPerLevel: Float32Array[],
  imageSize: Triple | Triple[],
  opts: PostprocessOptions = {},
): Promise<Detections[]> {
  return native.detPostprocessAsync(...args(headOutputs, anchorsPerLevel, imageSize, opts));
}
