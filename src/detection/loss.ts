// The RetinaNet training loss from raw head outputs, with gradients
// (MONAI RetinaNetDetector.compute_loss semantics), computed natively.
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import type { BoxCoderWeights } from './boxes.js';
import { toF32, toI32 } from './boxes.js';
import type { SamplerOptions } from './sampler.js';

/** Head outputs per FPN level, finest first (channels last). */
export interface HeadOutputs {
  /** [N, D1, D2, D3, A*numClasses], channel a*numClasses + c. */
  clsLogits: Tensor[];
  /** [N, D1, D2, D3, A*6], channel a*6 + j, j over (dx, dy, dz, dw, dh, dd). */
  boxRegression: Tensor[];
}

/** GT of one image: n boxes (6n numbers) and n labels in [0, numClasses). */
export interface ImageTargets {
  boxes: Float32Array | number[];
  labels: Int32Array | number[];
}

export interface DetectorLossOptions {
  /** Default 1. */
  numClasses?: number;
  /** 'focal' (default) or 'bce' (the MONAI LUNA16 tutorial's choice). */
  clsLoss?: 'focal' | 'bce';
  /** 'smoothl1' (default; on encoded targets) or 'giou' (on decoded boxes). */
  boxLoss?: 'smoothl1' | 'giou';
  /** Focal gamma, default 2. */
  focalGamma?: number;
  /** Focal alpha in [0, 1]; default none (no alpha weighting), like MONAI's FocalLoss. */
  focalAlpha?: number | null;
  /** Smooth-L1 beta, default 1/9. */
  smoothL1Beta?: number;
  /** ATSS options, default { numCandidates: 4, centerInGt: false }. */
  atss?: { numCandidates?: number; centerInGt?: boolean };
  /** Hard-negative sampler options, default { batchSizePerImage: 64, positiveFraction: 0.3, minNeg: 16, poolSize: 20 }. */
  sampler?: SamplerOptions;
  /** Default [1, 1, 1, 1, 1, 1]. */
  boxCoderWeights?: BoxCoderWeights;
  /** Seed of the sampler's RNG (default 0); pass a different one each step. */
  seed?: number;
  /** total = clsLossWeight * cls + box (default 1). */
  clsLossWeight?: number;
  /**
   * The gradients (not the loss values) are multiplied by this (default 1):
   * the loss scale of float16 mixed precision, applied to the seed of backward.
   */
  gradScale?: number;
  /**
   * Mixed precision: head outputs with NaN/Inf (a float16 overflow) give zero
   * gradients, NaN losses and `nonFinite: true` instead of an error, so the
   * step can be skipped and the loss scale lowered (default false: an error).
   */
  nonFiniteOk?: boolean;
}

export interface DetectorLossResult {
  cls: number;
  box: number;
  total: number;
  /** d total / d clsLogits, same shapes and dtypes as the inputs. */
  clsGrads: Tensor[];
  /** d total / d boxRegression, same shapes and dtypes as the inputs. */
  boxGrads: Tensor[];
  numSampledPositives: number;
  numSampledNegatives: number;
  numForeground: number;
  /** true only with `nonFiniteOk` when the head outputs were not finite. */
  nonFinite: boolean;
}

function args(head: HeadOutputs, anchorsPerLevel: Float32Array[], targets: ImageTargets[], opts: DetectorLossOptions) {
  if (!head || !Array.isArray(head.clsLogits) || !Array.isArray(head.boxRegression))
    throw new Error('detector.loss: headOutputs must be { clsLogits: Tensor[], boxRegression: Tensor[] }');
  if (!Array.isArray(anchorsPerLevel)) throw new Error('detector.loss: anchorsPerLevel must be an array of Float32Array');
  if (!Array.isArray(targets)) throw new Error('detector.loss: targets must be an array of { boxes, labels }, one per image');
  const o: Record<string, unknown> = { ...opts };
  if (o.focalAlpha === null || o.focalAlpha === undefined) o.focalAlpha = -1;
  return [
    head.clsLogits.map((t) => t.handle),
    head.boxRegression.map((t) => t.handle),
    anchorsPerLevel.map((a, i) => toF32(a, `detector.loss anchors[${i}]`)),
    targets.map((t, i) => ({
      boxes: toF32(t?.boxes ?? [], `detector.loss targets[${i}].boxes`),
      labels: toI32(t?.labels ?? [], `detector.loss targets[${i}].labels`),
    })),
    o,
  ];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function wrap(r: any): DetectorLossResult {
  return {
    cls: r.cls,
    box: r.box,
    total: r.total,
    clsGrads: r.clsGrads.map((h: never) => Tensor.wrap(h)),
    boxGrads: r.boxGrads.map((h: never) => Tensor.wrap(h)),
    numSampledPositives: r.numSampledPositives,
    numSampledNegatives: r.numSampledNegatives,
    numForeground: r.numForeground,
    nonFinite: r.nonFinite === true,
  };
}

/**
 * Classification + box regression loss of a batch and their gradients with
 * respect to every level's head outputs (on the CPU, or on the GPU when the
 * head outputs live there: then the gradients are GPU tensors in the head
 * outputs' dtype, float16/bfloat16 included). Per image: ATSS matching,
 * hard-negative sampling (hardness = max logit over classes), then
 *  - cls: focal (gamma 2) or BCE over the sampled anchors with one-hot
 *    targets, mean over (#sampled anchors in the batch × numClasses);
 *  - box: over all foreground anchors of the batch, smooth L1 (beta 1/9) on
 *    encoded targets, mean over (#foreground × 6), or 1 − GIoU on decoded
 *    boxes, mean over #foreground; 0 when there is no foreground.
 * total = clsLossWeight·cls + box. Images may have no GT (then only sampled
 * negatives contribute).
 */
export function loss(
  headOutputs: HeadOutputs,
  anchorsPerLevel: Float32Array[],
  targets: ImageTargets[],
  opts: DetectorLossOptions = {},
): DetectorLossResult {
  return wrap(native.detLoss(...args(headOutputs, anchorsPerLevel, targets, opts)));
}

/**
 * Same as `loss`, computed on a worker thread. The anchor arrays and the head
 * output tensors are used in place, not copied: do not modify them until the
 * promise settles.
 */
export async function lossAsync(
  headOutputs: HeadOutputs,
  anchorsPerLevel: Float32Array[],
  targets: ImageTargets[],
  opts: DetectorLossOptions = {},
): Promise<DetectorLossResult> {
  return wrap(await native.detLossAsync(...args(headOutputs, anchorsPerLevel, targets, opts)));
}
