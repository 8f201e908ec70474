// ATSS anchor matching (MONAI ATSSMatcher semantics).
import { native } from '../native.js';
import { anchorsPerLocation } from './anchors.js';
import { toF32 } from './boxes.js';

export interface AtssOptions {
  /** Candidates per level = numCandidates * anchorsPerLocation (default 4, MONAI's LUNA16 setting). */
  numCandidates?: number;
  /** Also require the anchor centre to lie inside the GT box (default false). */
  centerInGt?: boolean;
  /** Anchors per feature-map location (default: inferred from level 0, see anchors.anchorsPerLocation). */
  anchorsPerLocation?: number;
}

/**
 * Matched GT index per anchor (levels concatenated, finest first), -1 for background.
 *
 * For each GT and level the min(numCandidates*A, locations) anchors with the
 * nearest centres are candidates (ties: lower anchor index); the GT's IoU
 * threshold is mean + std (N-1) of its candidates' IoUs over all levels; a
 * candidate with IoU >= threshold (and, with centerInGt, centre inside the GT)
 * is positive; an anchor positive for several GTs takes the highest IoU
 * (ties: lower GT index). No GT: all -1. With a single candidate in total
 * (std undefined) that candidate is positive, as in MONAI.
 */
export function atss(anchorsPerLevel: Float32Array[], gtBoxes: ArrayLike<number>, opts: AtssOptions = {}): Int32Array {
  if (!Array.isArray(anchorsPerLevel) || anchorsPerLevel.length === 0)
    throw new Error('match.atss: anchorsPerLevel must be a non-empty array of Float32Array (one per level)');
  const A = opts.anchorsPerLocation ?? anchorsPerLocation(anchorsPerLevel[0]);
  return native.detAtss(anchorsPerLevel, A, toF32(gtBoxes, 'match.atss gtBoxes'), {
    numCandidates: opts.numCandidates ?? 4,
    centerInGt: opts.centerInGt ?? false,
  });
}
