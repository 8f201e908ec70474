// Hard-negative sampling (MONAI HardNegativeSampler semantics).
import { native } from '../native.js';
import { toF32, toI32 } from './boxes.js';

export interface SamplerOptions {
  /** Default 64. */
  batchSizePerImage?: number;
  /** Default 0.3. */
  positiveFraction?: number;
  /** Default 16. */
  minNeg?: number;
  /** Default 20. */
  poolSize?: number;
}

export const DEFAULT_SAMPLER: Required<SamplerOptions> = {
  batchSizePerImage: 64,
  positiveFraction: 0.3,
  minNeg: 16,
  poolSize: 20,
};

/**
 * Samples the anchors of one image for the classification loss.
 * `matched`: matcher output (>= 0 foreground, -1 background, < -1 ignored);
 * `scores`: hardness per anchor (the detector uses the max logit over classes).
 *   numPos = min(#fg, int(batchSizePerImage * positiveFraction))
 *   numNeg = min(#bg, max(minNeg, int(max(1, numPos) * |1 - 1/positiveFraction|)))
 * Positives are drawn at random; negatives at random from the numNeg * poolSize
 * highest-scoring background anchors. Same seed → same sample.
 * Returns ascending anchor indices.
 */
export function hardNegative(
  matched: ArrayLike<number>,
  scores: ArrayLike<number>,
  opts: SamplerOptions = {},
  seed = 0,
): { positive: Int32Array; negative: Int32Array } {
  return native.detSample(toI32(matched, 'sampler.hardNegative matched'), toF32(scores, 'sampler.hardNegative scores'), { ...DEFAULT_SAMPLER, ...opts }, seed);
}
